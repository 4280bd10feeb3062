//! Accounts opened on first use: after a reopen the store knows only the
//! list of accounts, and the first query or write of each opens it (index
//! and tree restored from what is stored). Whoever opens it, and however
//! many race to, every caller sees one state, the one from before.

use auditlog_core::merkle;
use auditlog_core::query::Join;
use auditlog_core::record::AccountId;
use auditlog_store::{DynStore, TreeHead};

use super::{Backend, acct, all, append_mixed, f, index_answers, role_mix};

/// The "Role created" events among [`role_mix`]`(n, _)`.
fn roles(n: usize) -> u64 {
    n.div_ceil(3) as u64
}

/// Many first queries and writes race for an account no one has used
/// since the reopen: one open, one tree (the writes' seqs go on from the
/// stored log's size, contiguous), and every answer within what was
/// stored and what was written.
pub(crate) async fn concurrent_first_uses_of_an_unopened_account_share_one_state<B: Backend>() {
    const WRITERS: usize = 8;
    const READERS: usize = 8;
    const PER_WRITE: usize = 10;
    let mut b = B::fresh();
    let a = acct("acme");
    // A sealed chunk and a tail: the open restores both.
    let n0 = 65_536 + 1_000;
    b.store().append(&a, role_mix(n0, 0)).await.unwrap();
    b.store()
        .append(&acct("other"), role_mix(3, 0))
        .await
        .unwrap();
    let before = b.store().tree_head(&a).await.unwrap();
    b.reopen();
    let s = b.store();
    let role = all(vec![f("event:eq:Role created")], Join::And);
    let every = all(vec![], Join::And);
    let total = (n0 + WRITERS * PER_WRITE) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (s, a) = (s.clone(), a.clone());
        tasks.spawn(async move {
            let appended = s
                .append(&a, role_mix(PER_WRITE, 1_000_000 + w as i64 * 100))
                .await
                .unwrap();
            appended
                .iter()
                .map(|x| x.record.body.seq)
                .collect::<Vec<u64>>()
        });
    }
    for _ in 0..READERS {
        let (s, a, role, every) = (s.clone(), a.clone(), role.clone(), every.clone());
        tasks.spawn(async move {
            let count = s.count(&a, &every).await.unwrap();
            assert!((n0 as u64..=total).contains(&count), "{count}");
            let roles_seen = s.count(&a, &role).await.unwrap();
            assert!(
                (roles(n0)..=roles(n0) + (WRITERS * roles(PER_WRITE) as usize) as u64)
                    .contains(&roles_seen),
                "{roles_seen}"
            );
            let head = s.tree_head(&a).await.unwrap();
            assert!((n0 as u64..=total).contains(&head.size), "{head:?}");
            let page = s.list(&a, &every, None, 5).await.unwrap();
            assert_eq!(page.records.len(), 5);
            assert!(
                page.records[0].seq >= n0 as u64 - 1,
                "{}",
                page.records[0].seq
            );
            Vec::new()
        });
    }
    let mut seqs: Vec<u64> = tasks.join_all().await.into_iter().flatten().collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (n0 as u64..total).collect();
    assert_eq!(
        seqs, expected,
        "the writes go on from the stored log, contiguous"
    );
    let oracle_roles = roles(n0) + (WRITERS as u64) * roles(PER_WRITE);
    let (count, roles_now, head) = settled(&s, &a).await;
    assert_eq!((count, roles_now, head.size), (total, oracle_roles, total));
    // The tree the writes extended is the stored one: consistent with the
    // head from before the reopen, and every new leaf proves into it.
    let proof = s.consistency_proof(&a, before.size, total).await.unwrap();
    merkle::verify_consistency(before.size, total, &before.root, &head.root, &proof).unwrap();
    let page = s.list(&a, &every, None, 100).await.unwrap();
    for r in page.records.iter().filter(|r| r.seq >= n0 as u64) {
        let proof = s.inclusion_proof(&a, r.seq, total).await.unwrap();
        merkle::verify_inclusion(&r.leaf_hash, r.seq, total, &proof, &head.root).unwrap();
    }
    // And what was written is what the next open finds.
    b.reopen();
    let again = settled(&b.store(), &a).await;
    assert_eq!(again, (total, oracle_roles, head));
}

/// Every event, the "Role created" ones, and the tree head.
async fn settled(s: &DynStore, a: &AccountId) -> (u64, u64, TreeHead) {
    (
        s.count(a, &all(vec![], Join::And)).await.unwrap(),
        s.count(a, &all(vec![f("event:eq:Role created")], Join::And))
            .await
            .unwrap(),
        s.tree_head(a).await.unwrap(),
    )
}

/// Everything a dashboard or a verifier asks of an account.
pub(crate) async fn answers(
    s: &DynStore,
    a: &AccountId,
) -> (
    Vec<(u64, Vec<u64>, Vec<u64>, u64)>,
    TreeHead,
    Option<i64>,
    Vec<String>,
    Option<String>,
) {
    (
        index_answers(s, a).await,
        s.tree_head(a).await.unwrap(),
        s.first_event_time(a).await.unwrap(),
        s.user_names(a, "u", 20).await.unwrap(),
        s.latest_checkpoint(a).await.unwrap(),
    )
}

/// An account opened lazily after a restart answers exactly as before it,
/// whichever use opens it: a query, the checkpoint signer (for an account
/// left with events no checkpoint covers), or a write.
pub(crate) async fn a_lazily_opened_account_answers_like_before<B: Backend>() {
    let mut b = B::fresh();
    let (big, small, unsigned, quiet) =
        (acct("big"), acct("small"), acct("unsigned"), acct("quiet"));
    let s = b.store();
    append_mixed(&s, &big, 65_536 + 2_000).await;
    append_mixed(&s, &small, 3_000).await;
    append_mixed(&s, &unsigned, 700).await;
    s.append(&quiet, role_mix(5, 0)).await.unwrap();
    for a in [&big, &small, &quiet] {
        let head = s.tree_head(a).await.unwrap();
        s.put_checkpoint(a, head.size, format!("note-{a}-{}", head.size))
            .await
            .unwrap();
    }
    let before = [
        answers(&s, &big).await,
        answers(&s, &small).await,
        answers(&s, &unsigned).await,
    ];
    let unsigned_head = before[2].1;
    drop(s);
    b.reopen();
    let s = b.store();
    // The signer's round opens the one account it has to sign, with the
    // head it had.
    assert_eq!(
        s.unsigned_heads().await.unwrap(),
        vec![(unsigned.clone(), unsigned_head)]
    );
    // Queries open the others, in another order than they were written.
    assert_eq!(answers(&s, &small).await, before[1]);
    assert_eq!(answers(&s, &big).await, before[0]);
    assert_eq!(answers(&s, &unsigned).await, before[2]);
    // A write is the first use of "quiet": its log goes on.
    let appended = s.append(&quiet, role_mix(2, 10)).await.unwrap();
    let seqs: Vec<u64> = appended.iter().map(|x| x.record.body.seq).collect();
    assert_eq!(seqs, [5, 6]);
    assert_eq!(s.count(&quiet, &all(vec![], Join::And)).await.unwrap(), 7);
}
