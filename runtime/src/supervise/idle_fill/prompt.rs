//! Synthetic prompts: lists of token ids made here, no tokenizer and no
//! dataset.

/// The lowest token id sent: below it, vocabularies keep their special
/// and control tokens (Llama's `<s>`, Mistral's control tokens up to 770).
pub const FIRST_TOKEN_ID: u32 = 1000;
/// How many ids from [`FIRST_TOKEN_ID`] on are used: ids stay below
/// 30 000, inside every vocabulary vLLM serves (the smallest, Llama 2's,
/// has 32 000).
pub const TOKEN_ID_SPAN: u32 = 29_000;
/// The first tokens of a prompt spell its number (base [`TOKEN_ID_SPAN`]),
/// so two prompts of one driver never share their first block.
pub const NUMBER_TOKENS: usize = 4;

/// Makes prompt after prompt of one length; each starts with its own
/// number, so no prompt's first block is in the prefix cache, and the rest
/// is pseudo-random.
#[derive(Debug, Clone)]
pub struct Prompts {
    next: u64,
    tokens: u32,
}

impl Prompts {
    /// Prompts of `tokens` tokens, numbered from `seed` (a random seed per
    /// driver: a restarted driver does not repeat the last one's prompts,
    /// which vLLM may still cache).
    pub fn new(seed: u64, tokens: u32) -> Prompts {
        Prompts { next: seed, tokens }
    }

    /// How many tokens each prompt has.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    /// The next prompt.
    pub fn next_prompt(&mut self) -> Vec<u32> {
        let number = self.next;
        self.next = self.next.wrapping_add(1);
        let mut ids = Vec::with_capacity(self.tokens as usize);
        let mut rest = number;
        for _ in 0..NUMBER_TOKENS {
            ids.push(FIRST_TOKEN_ID + (rest % u64::from(TOKEN_ID_SPAN)) as u32);
            rest /= u64::from(TOKEN_ID_SPAN);
        }
        let mut state = number;
        while ids.len() < self.tokens as usize {
            let value = splitmix64(&mut state);
            ids.push(FIRST_TOKEN_ID + (value % u64::from(TOKEN_ID_SPAN)) as u32);
        }
        ids.truncate(self.tokens as usize);
        ids
    }
}

/// SplitMix64 (Steele, Lea and Flood): a small generator good enough to
/// vary token ids.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The request body of one synthetic completion: `prompt` as token ids,
/// one token generated, labelled as ours in `user`.
pub fn request_body(model: &str, prompt: &[u32], user: &str) -> String {
    let mut body = String::with_capacity(prompt.len() * 6 + 128);
    body.push_str("{\"model\":");
    body.push_str(&serde_json::Value::from(model).to_string());
    body.push_str(",\"prompt\":[");
    for (index, id) in prompt.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(&id.to_string());
    }
    body.push_str("],\"max_tokens\":1,\"temperature\":0,\"user\":");
    body.push_str(&serde_json::Value::from(user).to_string());
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn prompts_have_their_length_valid_ids_and_distinct_heads() {
        let mut prompts = Prompts::new(u64::MAX - 5, 1024);
        let mut heads = HashSet::new();
        for _ in 0..2000 {
            let prompt = prompts.next_prompt();
            assert_eq!(prompt.len(), 1024);
            assert!(
                prompt
                    .iter()
                    .all(|&id| (FIRST_TOKEN_ID..FIRST_TOKEN_ID + TOKEN_ID_SPAN).contains(&id))
            );
            assert!(heads.insert(prompt[..NUMBER_TOKENS].to_vec()));
        }
        // Not one id repeated over and over.
        let prompt = prompts.next_prompt();
        let distinct: HashSet<_> = prompt.iter().collect();
        assert!(distinct.len() > 900, "{}", distinct.len());
    }

    #[test]
    fn the_body_is_json_with_the_prompt_as_token_ids() {
        let body = request_body("pearl-ai/\"m\"", &[1000, 2001], "jarvis-mine-idle-fill");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["model"], "pearl-ai/\"m\"");
        assert_eq!(value["prompt"], serde_json::json!([1000, 2001]));
        assert_eq!(value["max_tokens"], 1);
        assert_eq!(value["user"], "jarvis-mine-idle-fill");
    }
}
