//! Open accounts closed past their budget (`open_accounts_memory`): with a
//! budget of 0 every idle account but the one used last is closed after
//! each write group or open, so each use below reopens its account from
//! what is stored. Every answer must be the one a store without a budget
//! gives, and writes must go on from the stored log (seq, tree) whichever
//! state the account was in.

use auditlog_core::merkle;
use auditlog_core::query::Join;
use auditlog_store::layered::IndexOptions;
use auditlog_store::{DynStore, OpenAccountStats};

use super::lazy::answers;
use super::{Backend, acct, all, append_mixed, role_mix};

/// An index budget that closes every idle account but the last used.
fn closing_all() -> IndexOptions {
    IndexOptions {
        open_accounts_memory: 0,
        ..IndexOptions::default()
    }
}

fn evictions(s: &DynStore) -> u64 {
    s.open_account_stats().unwrap().evictions
}

/// The open accounts' counters once `settled` holds of them. The writer
/// closes accounts after it has answered the group (or the open) that
/// went past the budget, so a caller may look before it is done: waits
/// for it, at most 10 s.
async fn stats_once(s: &DynStore, settled: impl Fn(&OpenAccountStats) -> bool) -> OpenAccountStats {
    for _ in 0..1_000 {
        let stats = s.open_account_stats().unwrap();
        if settled(&stats) {
            return stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    s.open_account_stats().unwrap()
}

/// Accounts closed between uses answer exactly as open ones: counts,
/// histograms, pages, exports, suggestions, tree heads, checkpoints,
/// proofs; the checkpoint signer still finds an account it has to sign
/// after it was closed; and appends go on from the stored log's size.
pub(crate) async fn closed_accounts_answer_as_open_ones<B: Backend>() {
    let mut b = B::fresh();
    let names = ["big", "small", "unsigned", "tiny1", "tiny2"];
    let accounts: Vec<_> = names.iter().map(|n| acct(n)).collect();
    let s = b.store();
    // A sealed chunk and a tail; tails only; a few events.
    append_mixed(&s, &accounts[0], 65_536 + 2_000).await;
    append_mixed(&s, &accounts[1], 3_000).await;
    append_mixed(&s, &accounts[2], 700).await;
    for a in &accounts[3..] {
        s.append(a, role_mix(5, 0)).await.unwrap();
    }
    for a in accounts.iter().filter(|a| a.as_str() != "unsigned") {
        let head = s.tree_head(a).await.unwrap();
        s.put_checkpoint(a, head.size, format!("note-{a}-{}", head.size))
            .await
            .unwrap();
    }
    let mut before = Vec::new();
    for a in &accounts {
        before.push(answers(&s, a).await);
    }
    drop(s);
    b.reopen_with(closing_all());
    let s = b.store();
    // The signer's round: the one account with events no checkpoint covers.
    let heads = s.unsigned_heads().await.unwrap();
    assert_eq!(heads, vec![(accounts[2].clone(), before[2].1)]);
    // Twice round, so that each account is reopened after being closed.
    for _ in 0..2 {
        for (a, expected) in accounts.iter().zip(&before) {
            assert_eq!(&answers(&s, a).await, expected, "{a}");
        }
    }
    let expected = 2 * accounts.len() as u64 - 2;
    let stats = stats_once(&s, |st| st.open == 1 && st.evictions >= expected).await;
    assert_eq!((stats.open, stats.budget), (1, 0), "{stats:?}");
    assert!(stats.evictions >= expected, "{stats:?}");
    let closed = stats.evictions;
    // Still unsigned after it was closed and opened again.
    assert_eq!(
        s.unsigned_heads().await.unwrap(),
        vec![(accounts[2].clone(), before[2].1)]
    );
    s.put_checkpoint(&accounts[2], before[2].1.size, "note-unsigned".into())
        .await
        .unwrap();
    // Signed, then closed: nothing left for the signer.
    s.count(&accounts[0], &all(vec![], Join::And))
        .await
        .unwrap();
    s.append(&accounts[3], role_mix(1, 50)).await.unwrap();
    let heads = s.unsigned_heads().await.unwrap();
    assert_eq!(
        heads,
        vec![(
            accounts[3].clone(),
            s.tree_head(&accounts[3]).await.unwrap()
        )]
    );

    // Writes round-robin: each account is reopened for its write, and
    // its seqs go on from the stored log, dense.
    let mut sizes: Vec<u64> = Vec::new();
    for a in &accounts {
        sizes.push(s.tree_head(a).await.unwrap().size);
    }
    let old_heads: Vec<_> = {
        let mut v = Vec::new();
        for a in &accounts {
            v.push(s.tree_head(a).await.unwrap());
        }
        v
    };
    for round in 0..3 {
        for (k, a) in accounts.iter().enumerate() {
            let appended = s.append(a, role_mix(4, 10_000 + round)).await.unwrap();
            let seqs: Vec<u64> = appended.iter().map(|x| x.record.body.seq).collect();
            let from = sizes[k];
            assert_eq!(seqs, (from..from + 4).collect::<Vec<_>>(), "{a}");
            sizes[k] += 4;
        }
    }
    // Proofs from the heads before the writes to the heads after them.
    for (k, a) in accounts.iter().enumerate() {
        let head = s.tree_head(a).await.unwrap();
        assert_eq!(head.size, sizes[k]);
        let old = old_heads[k];
        let proof = s.consistency_proof(a, old.size, head.size).await.unwrap();
        merkle::verify_consistency(old.size, head.size, &old.root, &head.root, &proof).unwrap();
        let page = s.list(a, &all(vec![], Join::And), None, 3).await.unwrap();
        for r in &page.records {
            let proof = s.inclusion_proof(a, r.seq, head.size).await.unwrap();
            merkle::verify_inclusion(&r.leaf_hash, r.seq, head.size, &proof, &head.root).unwrap();
        }
    }
    assert!(evictions(&s) > closed, "the writes closed accounts too");
    let mut after = Vec::new();
    for a in &accounts {
        after.push(answers(&s, a).await);
    }
    // And a store without a budget, opened on the same data, agrees.
    drop(s);
    b.reopen();
    let s = b.store();
    for (a, expected) in accounts.iter().zip(&after) {
        assert_eq!(&answers(&s, a).await, expected, "{a}");
    }
    assert_eq!(evictions(&s), 0);
}

/// Writes and queries racing on many accounts while every idle one is
/// closed, and queries cancelled mid-way: an account in use is never
/// closed under its user, no acknowledged event is lost, and every
/// account's seqs stay dense.
pub(crate) async fn accounts_in_use_are_never_closed<B: Backend>() {
    const ACCOUNTS: usize = 6;
    const WRITES: usize = 8;
    const PER_WRITE: usize = 3;
    let mut b = B::fresh();
    let accounts: Vec<_> = (0..ACCOUNTS).map(|k| acct(&format!("race{k}"))).collect();
    for a in &accounts {
        b.store().append(a, role_mix(2, 0)).await.unwrap();
    }
    b.reopen_with(closing_all());
    let store = b.store();
    let mut tasks = tokio::task::JoinSet::new();
    for account in &accounts {
        let (s, a) = (store.clone(), account.clone());
        tasks.spawn(async move {
            let mut seqs = Vec::new();
            for w in 0..WRITES {
                let appended = s
                    .append(&a, role_mix(PER_WRITE, 100 + w as i64))
                    .await
                    .unwrap();
                seqs.extend(appended.iter().map(|x| x.record.body.seq));
            }
            (a, seqs)
        });
        let (s, a) = (store.clone(), account.clone());
        tasks.spawn(async move {
            for _ in 0..WRITES {
                let n = s.count(&a, &all(vec![], Join::And)).await.unwrap();
                assert!((2..=(2 + WRITES * PER_WRITE) as u64).contains(&n), "{n}");
                let head = s.tree_head(&a).await.unwrap();
                assert!(head.size >= 2);
            }
            (a, Vec::new())
        });
    }
    // Queries given up at any point, an open included (a client that
    // went away): a state such an open read before a write and a close
    // must never become the account's.
    for (k, account) in accounts.iter().enumerate() {
        let (s, a) = (store.clone(), account.clone());
        tasks.spawn(async move {
            for i in 0..20u64 {
                let wait = std::time::Duration::from_micros((i * 37 + k as u64 * 11) % 400);
                let _ = tokio::time::timeout(wait, s.count(&a, &all(vec![], Join::And))).await;
            }
            (a, Vec::new())
        });
    }
    let s = store;
    let total = (2 + WRITES * PER_WRITE) as u64;
    for (a, mut seqs) in tasks.join_all().await {
        if seqs.is_empty() {
            continue;
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (2..total).collect::<Vec<_>>(), "{a}");
    }
    // Their users gone, the groups that follow close every one of them.
    // Not always the first: a cancelled query's open may still be on its
    // way to the writer, or (PostgreSQL) a woken pull may hold an account,
    // when it runs; closing happens at group boundaries only.
    let settled = |st: &OpenAccountStats| st.open == 1 && st.evictions >= ACCOUNTS as u64;
    let mut stats = s.open_account_stats().unwrap();
    for _ in 0..200 {
        s.append(&acct("after"), role_mix(1, 0)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stats = s.open_account_stats().unwrap();
        if settled(&stats) {
            break;
        }
    }
    assert_eq!(stats.open, 1, "{stats:?}");
    assert!(stats.evictions >= ACCOUNTS as u64, "{stats:?}");
    for a in &accounts {
        assert_eq!(s.count(a, &all(vec![], Join::And)).await.unwrap(), total);
        assert_eq!(s.tree_head(a).await.unwrap().size, total);
    }
}
