//! `[mining.extra].workers`: parsed from the values a TOML config can give,
//! described by [`SettingValue`] so that the crate needs no TOML library.

use std::fmt;

/// The setting's name, as messages write it.
pub const WORKERS_KEY: &str = "[mining.extra].workers";

/// The forms the setting accepts, for messages.
const ACCEPTED: &str = "\"auto\" (one worker per GPU, or per tensor-parallel group when the model needs more memory than one GPU), \"single\" (one worker with every GPU), or a list of GPU groups, each a list of NVML indexes or UUIDs, such as [[\"0\"], [\"1\"]] or [[\"0\", \"1\"], [\"GPU-…\", \"3\"]]";

/// How workers are formed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WorkersSetting {
    /// One worker per qualifying GPU, or per tensor-parallel group of the
    /// smallest size that holds the model.
    #[default]
    Auto,
    /// One worker with every GPU and no tensor parallelism (vLLM then uses
    /// the first GPU): the behaviour before workers existed.
    Single,
    /// One worker per group, in order; members are NVML indexes ("0") or
    /// UUIDs ("GPU-…").
    Groups(Vec<Vec<String>>),
}

/// A configuration value as TOML gives it. Callers convert their own value
/// type (a `toml::Value`, a WIT `extra-value`) into this.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    List(Vec<SettingValue>),
    /// A table, or any other value the setting never takes.
    Table,
}

impl SettingValue {
    /// "a string", "an integer", ...
    fn kind(&self) -> &'static str {
        match self {
            SettingValue::Text(_) => "a string",
            SettingValue::Integer(_) => "an integer",
            SettingValue::Float(_) => "a float",
            SettingValue::Boolean(_) => "a boolean",
            SettingValue::List(_) => "a list",
            SettingValue::Table => "a table",
        }
    }

    /// The value as a message shows it: a string or number as written,
    /// anything else by its kind.
    fn shown(&self) -> String {
        match self {
            SettingValue::Text(text) => format!("{text:?}"),
            SettingValue::Integer(n) => n.to_string(),
            SettingValue::Float(x) => format!("{x:?}"),
            SettingValue::Boolean(b) => b.to_string(),
            other => other.kind().to_owned(),
        }
    }
}

/// Why `[mining.extra].workers` was not understood. Groups are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkersSettingError {
    /// Neither a string nor a list.
    WrongType { found: &'static str },
    /// A string other than "auto" or "single".
    UnknownWord { word: String },
    /// An empty list.
    NoGroups,
    /// A list item that is not itself a list (`["0", "1"]`).
    GroupNotAList { group: usize, found: String },
    /// An empty group.
    EmptyGroup { group: usize },
    /// A member that is neither an index nor a UUID.
    BadMember { group: usize, member: String },
}

impl fmt::Display for WorkersSettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkersSettingError::WrongType { found } => {
                write!(f, "{WORKERS_KEY} is {found}; it must be {ACCEPTED}")
            }
            WorkersSettingError::UnknownWord { word } => {
                write!(
                    f,
                    "{WORKERS_KEY} = {word:?} is not understood; it must be {ACCEPTED}"
                )
            }
            WorkersSettingError::NoGroups => write!(
                f,
                "{WORKERS_KEY} is an empty list; list at least one group, or use \"auto\"; it must be {ACCEPTED}"
            ),
            WorkersSettingError::GroupNotAList { group, found } => write!(
                f,
                "{WORKERS_KEY}: group {group} is {found}, not a list of GPUs; write each group as a list: [[\"0\"], [\"1\"]] for one worker per GPU, [[\"0\", \"1\"]] for one worker on both"
            ),
            WorkersSettingError::EmptyGroup { group } => write!(
                f,
                "{WORKERS_KEY}: group {group} is empty; name its GPUs by NVML index or UUID, or remove it"
            ),
            WorkersSettingError::BadMember { group, member } => write!(
                f,
                "{WORKERS_KEY}: group {group} names {member}, which is neither an NVML index such as \"0\" nor a GPU UUID such as \"GPU-…\""
            ),
        }
    }
}

impl std::error::Error for WorkersSettingError {}

impl WorkersSetting {
    /// Parses the setting. A missing setting is [`WorkersSetting::default`]
    /// (`Auto`); an empty or blank string is `Auto` too, as an empty
    /// `cuda_visible_devices` means "every GPU". Words are case-insensitive;
    /// integers in a group are indexes.
    pub fn parse(value: &SettingValue) -> Result<Self, WorkersSettingError> {
        match value {
            SettingValue::Text(text) => Self::from_text(text),
            SettingValue::List(groups) => parse_groups(groups),
            other => Err(WorkersSettingError::WrongType {
                found: other.kind(),
            }),
        }
    }

    /// Parses the string form: "auto", "single" or "".
    pub fn from_text(text: &str) -> Result<Self, WorkersSettingError> {
        let word = text.trim();
        if word.is_empty() || word.eq_ignore_ascii_case("auto") {
            Ok(WorkersSetting::Auto)
        } else if word.eq_ignore_ascii_case("single") {
            Ok(WorkersSetting::Single)
        } else {
            Err(WorkersSettingError::UnknownWord {
                word: text.to_owned(),
            })
        }
    }
}

/// The setting as TOML would write it: `"auto"`, `"single"`,
/// `[["0", "1"], ["2", "3"]]`.
impl fmt::Display for WorkersSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkersSetting::Auto => write!(f, "\"auto\""),
            WorkersSetting::Single => write!(f, "\"single\""),
            WorkersSetting::Groups(groups) => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|group| {
                        let members: Vec<String> =
                            group.iter().map(|id| format!("{id:?}")).collect();
                        format!("[{}]", members.join(", "))
                    })
                    .collect();
                write!(f, "[{}]", groups.join(", "))
            }
        }
    }
}

fn parse_groups(groups: &[SettingValue]) -> Result<WorkersSetting, WorkersSettingError> {
    if groups.is_empty() {
        return Err(WorkersSettingError::NoGroups);
    }
    let mut parsed = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        let number = i + 1;
        let SettingValue::List(members) = group else {
            return Err(WorkersSettingError::GroupNotAList {
                group: number,
                found: format!("{} ({})", group.kind(), group.shown()),
            });
        };
        if members.is_empty() {
            return Err(WorkersSettingError::EmptyGroup { group: number });
        }
        let members = members
            .iter()
            .map(|member| {
                gpu_id(member).ok_or_else(|| WorkersSettingError::BadMember {
                    group: number,
                    member: member.shown(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        parsed.push(members);
    }
    Ok(WorkersSetting::Groups(parsed))
}

/// A member as the planner takes it: an index's digits, or a UUID.
fn gpu_id(member: &SettingValue) -> Option<String> {
    match member {
        SettingValue::Integer(n) => u32::try_from(*n).ok().map(|index| index.to_string()),
        SettingValue::Text(text) => {
            let id = text.trim();
            let index = !id.is_empty()
                && id.chars().all(|c| c.is_ascii_digit())
                && id.parse::<u32>().is_ok();
            let uuid = ["GPU-", "MIG-"].iter().any(|prefix| {
                id.len() > prefix.len()
                    && id.is_char_boundary(prefix.len())
                    && id[..prefix.len()].eq_ignore_ascii_case(prefix)
            });
            (index || uuid).then(|| id.to_owned())
        }
        _ => None,
    }
}
