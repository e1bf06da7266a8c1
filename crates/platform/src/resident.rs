//! What the residents' rights (SPEC §9) and the operator staff (SPEC §8) need from the
//! platform's own records, for the capability crates that serve them (`tsunagu-rights`,
//! `tsunagu-staff`): an account by id, what the platform holds about a resident, and the
//! changes that restrict or erase an account. The changes come back as a [`Commit`] the
//! caller completes with its own change and ledger leaf, so the request's state and its
//! effect are durable together.

use crate::ledger::leaf;
use crate::{Outcome, Platform, Refusal};
use tsunagu_core::consent::{ConsentEventKind, ConsentStatus};
use tsunagu_core::event::Event;
use tsunagu_core::identity::{BasicAttributes, Restriction};
use tsunagu_core::{AccountId, Code};
use tsunagu_store::{
    AccountRow, Commit, ConsentChange, ConsentEventRow, ConsentRow, DeviceRow, IdentityChange,
    TicketRow,
};

/// The reason an erasure gives to each consent it revokes (the consent feed passes it on).
pub const ERASURE: &str = "erasure";

/// Everything the platform holds about one resident in its own tables (the ledger's part is
/// the resident's history).
#[derive(Debug, Clone)]
pub struct ResidentRecord {
    pub account: AccountRow,
    /// The four basic items, opened (none for a provisional or erased account).
    pub attributes: Option<BasicAttributes>,
    pub devices: Vec<DeviceRow>,
    /// Every consent, newest first, each with the JWS as the resident signed it.
    pub consents: Vec<ConsentRow>,
    /// Tickets issued about the resident, newest first (refused requests are only leaves).
    pub tickets: Vec<TicketRow>,
}

/// Most tickets a record lists.
pub const MAX_RECORD_TICKETS: u32 = 10_000;

impl Platform {
    /// An account by its id.
    pub async fn account_by_id(&self, id: &AccountId) -> Outcome<Option<AccountRow>> {
        Ok(self.store.account(id).await?)
    }

    /// The account, refused as `unknown_subject` when there is none.
    async fn existing_account(&self, id: &AccountId) -> Outcome<AccountRow> {
        self.store
            .account(id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownSubject, "no such account"))
    }

    /// Everything the platform holds about a resident.
    pub async fn resident_record(&self, id: &AccountId) -> Outcome<ResidentRecord> {
        let account = self.existing_account(id).await?;
        let attributes = self.identity.open_attributes(&account)?;
        Ok(ResidentRecord {
            devices: self.store.devices_of(id).await?,
            consents: self.store.consents_of(id).await?,
            tickets: self.store.tickets_of(id, MAX_RECORD_TICKETS).await?,
            attributes,
            account,
        })
    }

    /// The four basic items of an account (for staff, who must state a reason first).
    pub async fn basic_items(
        &self,
        id: &AccountId,
    ) -> Outcome<(AccountRow, Option<BasicAttributes>)> {
        let account = self.existing_account(id).await?;
        let attributes = self.identity.open_attributes(&account)?;
        Ok((account, attributes))
    }

    /// The change that a resident's request for `requested` makes (`Restriction::then`: a
    /// resume lifts either, otherwise the stronger stays), compared and set against the
    /// restriction read now. `None` when nothing changes.
    pub async fn restriction_change(
        &self,
        id: &AccountId,
        requested: Restriction,
        t: i64,
    ) -> Outcome<Option<IdentityChange>> {
        let account = self.existing_account(id).await?;
        if account.erased_at.is_some() {
            return Err(Refusal::new(Code::AccountErased, "the account was erased"));
        }
        let to = account.restriction.then(requested);
        if account.restriction == to {
            return Ok(None);
        }
        Ok(Some(IdentityChange::SetRestriction {
            id: id.clone(),
            from: account.restriction,
            to,
            updated_at: t,
        }))
    }

    /// The commit that erases an account (SPEC §9): its attributes, card reference, device
    /// keys, sessions and OpenID Connect grants go; every consent still active is revoked,
    /// each with a `consent.revoked` leaf and a feed event whose reason is `erasure`, so
    /// each service learns it. The caller adds its own change and leaf and commits.
    pub async fn erasure_commit(&self, id: &AccountId, t: i64) -> Outcome<Commit> {
        let account = self.existing_account(id).await?;
        if account.erased_at.is_some() {
            return Err(Refusal::new(Code::AccountErased, "the account was erased"));
        }
        let subject = self.keys.ledger_subject(id).into_string();
        let mut commit = Commit::new();
        for consent in self.store.consents_of(id).await? {
            if consent.status != ConsentStatus::Active {
                continue;
            }
            commit.push(ConsentChange::SetConsentStatus {
                id: consent.id.clone(),
                from: ConsentStatus::Active,
                to: ConsentStatus::Revoked,
                updated_at: t,
            });
            commit.push(ConsentChange::InsertConsentEvent(ConsentEventRow {
                seq: 0,
                consent_id: consent.id.clone(),
                account_id: id.clone(),
                consumer_id: consent.consumer_id.clone(),
                provider_id: consent.provider_id.clone(),
                purpose_id: consent.purpose_id.clone(),
                status: ConsentEventKind::Revoked,
                items: consent.items.clone(),
                expires_at: consent.expires_at,
                created_at: t,
                reason: Some(ERASURE.to_owned()),
            }));
            commit = commit.leaf(leaf(
                &Event::ConsentRevoked {
                    subject: subject.clone(),
                    consent: consent.id.to_string(),
                    change_sha256: String::new(),
                    reason: Some(ERASURE.to_owned()),
                    confirmed_by: None,
                },
                &[id],
                t,
            ));
        }
        commit.push(IdentityChange::EraseAccount {
            id: id.clone(),
            at: t,
        });
        Ok(commit)
    }
}
