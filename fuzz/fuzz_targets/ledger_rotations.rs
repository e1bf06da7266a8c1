//! The key changes `tsunagu ledger verify` reads from `GET /v1/ledger/key-rotations`: arbitrary
//! JSON, and byte edits of a genuine two-step chain (k0 → k1 → k2), then
//! `follow_key_rotations` from k0. Never a panic; an accepted chain ends at the asked key,
//! which is one k0 really announced (directly or through k1), through handover heads k0 and
//! k1 really signed — nothing the fuzzer made is followed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_ledger::SignedTreeHead;
use tsunagu_ledger::rotation::{KeyRotationProof, follow_key_rotations};

struct Genuine {
    keys: Vec<SigningKey>,
    chain_json: Vec<u8>,
    heads: Vec<SignedTreeHead>,
}

fn rotation(old: &SigningKey, new: &SigningKey) -> KeyRotationProof {
    tsunagu_ledger::rotation::testing::announcement(old, new, old)
}

fn genuine() -> &'static Genuine {
    static G: OnceLock<Genuine> = OnceLock::new();
    G.get_or_init(|| {
        let keys: Vec<SigningKey> = (0..3)
            .map(|_| SigningKey::generate(Alg::EdDsa).unwrap())
            .collect();
        let chain = vec![rotation(&keys[1], &keys[2]), rotation(&keys[0], &keys[1])];
        Genuine {
            heads: chain.iter().map(|r| r.sth.clone()).collect(),
            chain_json: serde_json::to_vec(&chain).unwrap(),
            keys,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let g = genuine();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // Byte edits of the genuine chain: (position, xor) pairs.
        let mut b = g.chain_json.clone();
        for e in rest.chunks_exact(3) {
            let pos = usize::from(u16::from_le_bytes([e[0], e[1]])) % b.len();
            b[pos] ^= e[2];
        }
        b
    };
    let Ok(chain) = serde_json::from_slice::<Vec<KeyRotationProof>>(&bytes) else {
        return;
    };
    let targets = [g.keys[1].kid(), g.keys[2].kid(), "someone-else"];
    let target = targets[usize::from(mode / 2) % targets.len()];
    if let Ok((key, handovers)) = follow_key_rotations(g.keys[0].public_jwk(), target, &chain) {
        assert_eq!(key.thumbprint(), target);
        assert!(
            target != "someone-else",
            "a key nobody announced was followed"
        );
        for h in &handovers {
            assert!(
                g.heads.contains(h),
                "a handover head k0/k1 never signed was followed: {h:?} not in {:?}",
                g.heads
            );
        }
    }
});
