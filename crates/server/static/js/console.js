// The service and committee consoles' page behaviour (being built).
