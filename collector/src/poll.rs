//! One miner's poll: which read commands to ask, by the make its `summary`
//! reveals. Kept apart from the client (which only speaks the protocol) and
//! from the normaliser (which only reads answers), so neither imports the
//! other.

use std::net::SocketAddr;

use crate::cgminer::{Client, ReadCommand};
use crate::normalize::{looks_like_whatsminer, Answers};

impl Client {
    /// Asks a miner for what one sample needs: `summary` first, then, by the
    /// make it reveals, `stats` and `pools` (Antminer and other CGMiner
    /// firmware) or `devs`, `pools` and `devdetails` (Whatsminer). A miner
    /// that cannot be reached for `summary` is not asked anything else.
    pub async fn poll(&self, addr: SocketAddr) -> Answers {
        let mut answers = Answers::default();
        match self.query(addr, ReadCommand::Summary).await {
            Ok(summary) => answers.summary = Some(summary),
            Err(e) => {
                let unreachable = e.is_retryable();
                answers.errors.push(e);
                if unreachable {
                    return answers;
                }
            }
        }
        let whatsminer = answers.summary.as_ref().is_some_and(looks_like_whatsminer);
        let rest: &[ReadCommand] = if whatsminer {
            &[
                ReadCommand::Devs,
                ReadCommand::Pools,
                ReadCommand::Devdetails,
            ]
        } else {
            &[ReadCommand::Stats, ReadCommand::Pools]
        };
        for &command in rest {
            match self.query(addr, command).await {
                Ok(v) => *answers.slot(command) = Some(v),
                Err(e) => answers.errors.push(e),
            }
        }
        answers
    }
}
