//! The resident's history and the auditors' view of the ledger.

use crate::city::City;
use tsunagu_core::Code;
use tsunagu_platform::history::EntryOutcome;

#[tokio::test]
async fn a_residents_history_is_hers_newest_first_in_pages_under_one_tree_head() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let taro = city.resident(Some("前橋　太郎")).await;
    city.consented(&hanako, &["allergy"]).await;
    let history = &city.platform.history;
    let page = history.page(&hanako.session, None, 50).await.unwrap();
    let kinds: Vec<Option<&str>> = page.items.iter().map(|i| i.kind()).collect();
    // Enrolled, logged in, consented: newest first.
    assert_eq!(
        kinds,
        [
            Some("consent.granted"),
            Some("auth.login"),
            Some("identity.enrolled")
        ],
        "{kinds:?}"
    );
    assert!(
        page.items
            .iter()
            .all(|i| i.outcome == EntryOutcome::Recorded)
    );
    let indices: Vec<u64> = page.items.iter().map(|i| i.leaf.index).collect();
    assert!(indices.windows(2).all(|w| w[0] > w[1]), "{indices:?}");
    assert!(
        indices.iter().all(|i| *i < page.sth.tree_size),
        "every entry is in the tree head"
    );
    // Pages of one, walking down.
    let first = history.page(&hanako.session, None, 1).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let next = history
        .page(&hanako.session, first.next_before, 1)
        .await
        .unwrap();
    assert_eq!(next.items[0].leaf.index, indices[1]);
    // Taro sees only his own.
    let his = history.page(&taro.session, None, 50).await.unwrap();
    assert!(his.items.iter().all(|i| !indices.contains(&i.leaf.index)));
}

#[tokio::test]
async fn ledger_entries_are_for_auditors_and_within_the_log() {
    let city = City::new().await;
    let history = &city.platform.history;
    let refusal = history.entries(None, 0, 1).await.unwrap_err();
    assert_eq!(refusal.code, Code::Unauthorized);
    let refusal = history
        .entries(Some("not-an-assertion"), 0, 1)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::Unauthorized);
}
