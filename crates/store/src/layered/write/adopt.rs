//! Adopting the state of an account opened off the writer (see
//! `layered/open.rs`): the writer keeps the first state it is handed for an
//! account, and that is the one every caller gets back — unless the
//! account was closed after that state was read (`Opened::closes`): such a
//! state is refused, and its caller opens the account again.

use super::{Op, Sequencer, WriteOp, WriterAccount};
use crate::layered::open::Opened;

impl Sequencer {
    /// Applies the group's [`Op::Adopt`]s, answering each at once (they
    /// touch no database), and returns the other ops.
    pub(super) fn adopt(&mut self, ops: Vec<WriteOp>) -> Vec<WriteOp> {
        let mut rest = Vec::with_capacity(ops.len());
        for op in ops {
            let WriteOp(Op::Adopt {
                account,
                opened,
                reply,
            }) = op
            else {
                rest.push(op);
                continue;
            };
            // The slot exists: only known accounts are opened.
            let slot = self.shared.slot(&account);
            let state = match self.accounts.get(&account) {
                Some(acc) => acc.state.clone(),
                None if slot.as_ref().is_some_and(|s| s.closes() != opened.closes) => {
                    // Read before a close: the log may have grown since.
                    drop(reply.send(Ok(None)));
                    continue;
                }
                None => {
                    let Opened { state, tree, .. } = *opened;
                    self.accounts.insert(
                        account.clone(),
                        WriterAccount {
                            state: state.clone(),
                            tree,
                            counted: 0,
                        },
                    );
                    self.unsealed.insert(account.clone());
                    self.changed(&account);
                    state
                }
            };
            let state = match slot {
                Some(slot) => slot.install(state),
                None => state,
            };
            drop(reply.send(Ok(Some(state))));
        }
        rest
    }
}
