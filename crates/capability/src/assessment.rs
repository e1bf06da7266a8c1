//! A capability's part of the deployment's privacy impact assessment: the personal-data
//! files it keeps, the flows it makes and the measures it enforces, each read from the
//! running deployment (its configuration and records), never written by hand. The
//! assessment generator (issue 15, `tsunagu-pia`) composes the sections of every capability;
//! a new capability adds its section without editing the generator. Field names follow the
//! assessment's pinned JSON (`files`, `flows`, `measures`).

use serde::Serialize;

/// What one capability contributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AssessmentSection {
    pub files: Vec<DataFile>,
    pub flows: Vec<DataFlow>,
    pub measures: Vec<Measure>,
}

/// A personal-data file the capability keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFile {
    /// Stable id (`identity.accounts`).
    pub id: String,
    pub name: String,
    pub items: Vec<DataItem>,
    /// How many people it is about, when the capability counts them.
    pub subjects: Option<u64>,
    pub sources: Vec<String>,
    pub uses: Vec<String>,
    /// How long it is kept, from the configuration.
    pub retention: String,
}

/// An item of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataItem {
    pub name: String,
    pub sensitive: bool,
}

impl DataItem {
    pub fn new(name: &str, sensitive: bool) -> DataItem {
        DataItem {
            name: name.to_owned(),
            sensitive,
        }
    }
}

/// A flow of personal data from one party to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFlow {
    pub from: String,
    pub to: String,
    pub items: Vec<String>,
    pub purpose: String,
    /// `consent`, `vital_interest` or `statutory`.
    pub basis: String,
    /// How many provisions were made, when the capability counts them.
    pub provisions: Option<u64>,
}

/// A measure the capability enforces, and whether it is in force in this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measure {
    /// Stable id (`identity.revocation_checked`).
    pub id: String,
    pub text: String,
    pub in_force: bool,
    /// What was read to decide (a setting, a count).
    pub evidence: String,
}

impl Measure {
    pub fn new(id: &str, text: &str, in_force: bool, evidence: impl Into<String>) -> Measure {
        Measure {
            id: id.to_owned(),
            text: text.to_owned(),
            in_force,
            evidence: evidence.into(),
        }
    }
}
