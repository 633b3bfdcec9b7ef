//! The commands the collector may send: a whitelist in the types.
//!
//! Polling can only name a [`ReadCommand`]; a [`PrivilegedCommand`] goes
//! through `Client::execute`, which only a command from adit calls.

use std::str::FromStr;

use crate::error::Error;

/// Read-only commands, for polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadCommand {
    Summary,
    Stats,
    Pools,
    Devs,
    Edevs,
    Devdetails,
    Version,
    Config,
    Coin,
    Asccount,
}

impl ReadCommand {
    pub const ALL: [Self; 10] = [
        Self::Summary,
        Self::Stats,
        Self::Pools,
        Self::Devs,
        Self::Edevs,
        Self::Devdetails,
        Self::Version,
        Self::Config,
        Self::Coin,
        Self::Asccount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Summary => "summary",
            Self::Stats => "stats",
            Self::Pools => "pools",
            Self::Devs => "devs",
            Self::Edevs => "edevs",
            Self::Devdetails => "devdetails",
            Self::Version => "version",
            Self::Config => "config",
            Self::Coin => "coin",
            Self::Asccount => "asccount",
        }
    }
}

/// Commands that change a miner. Which ones a firmware has differs:
/// stock Antminer firmware has `restart`, pool and `asc*` commands but no
/// `reboot`, fan or frequency over this API; a miner without one answers
/// `STATUS E` ("Invalid command"), which becomes `Error::Miner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivilegedCommand {
    /// Restarts the mining software (cgminer/bmminer/btminer).
    Restart,
    /// Reboots the control board, where the firmware offers it.
    Reboot,
    /// Stops the mining software.
    Quit,
    AscEnable,
    AscDisable,
    PgaEnable,
    PgaDisable,
    /// `ascset` (`N,opt[,val]`): fan and frequency on firmware that allows them.
    AscSet,
    AddPool,
    SwitchPool,
    EnablePool,
    DisablePool,
    RemovePool,
}

impl PrivilegedCommand {
    pub const ALL: [Self; 13] = [
        Self::Restart,
        Self::Reboot,
        Self::Quit,
        Self::AscEnable,
        Self::AscDisable,
        Self::PgaEnable,
        Self::PgaDisable,
        Self::AscSet,
        Self::AddPool,
        Self::SwitchPool,
        Self::EnablePool,
        Self::DisablePool,
        Self::RemovePool,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Reboot => "reboot",
            Self::Quit => "quit",
            Self::AscEnable => "ascenable",
            Self::AscDisable => "ascdisable",
            Self::PgaEnable => "pgaenable",
            Self::PgaDisable => "pgadisable",
            Self::AscSet => "ascset",
            Self::AddPool => "addpool",
            Self::SwitchPool => "switchpool",
            Self::EnablePool => "enablepool",
            Self::DisablePool => "disablepool",
            Self::RemovePool => "removepool",
        }
    }
}

impl FromStr for ReadCommand {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::CommandNotAllowed {
                command: s.to_owned(),
            })
    }
}

impl FromStr for PrivilegedCommand {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::CommandNotAllowed {
                command: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_lists_do_not_overlap() {
        for c in ReadCommand::ALL {
            assert_eq!(c.as_str().parse::<ReadCommand>().unwrap(), c);
            assert!(c.as_str().parse::<PrivilegedCommand>().is_err());
        }
        for c in PrivilegedCommand::ALL {
            assert_eq!(c.as_str().parse::<PrivilegedCommand>().unwrap(), c);
            assert!(c.as_str().parse::<ReadCommand>().is_err());
        }
    }

    #[test]
    fn unknown_commands_are_refused() {
        for name in [
            "",
            "Restart",
            "summary+pools",
            "save",
            "privileged",
            "debug",
        ] {
            let err = name.parse::<PrivilegedCommand>().unwrap_err();
            assert_eq!(err.code(), "command_not_allowed");
        }
    }
}
