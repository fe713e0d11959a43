//! The fenced blocks of a Markdown document (`docs/protocol.md`), for
//! the tests that hold the document's examples to the code: this crate's
//! (`protocol_doc.rs`) and the widget's, which includes this file.

/// A fenced block: `lang` and `tag` are the first two words of its info
/// string; `line` is its opening fence's line (from 1).
pub struct Block {
    pub line: usize,
    pub lang: String,
    pub tag: Option<String>,
    pub body: String,
}

pub fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// The document's fenced blocks, in order; an error for one left open.
pub fn blocks(doc: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, text) in doc.lines().enumerate() {
        if is_fence(text) {
            match current.take() {
                None => {
                    let info = text.trim_start().trim_start_matches('`');
                    let mut words = info.split_whitespace();
                    current = Some(Block {
                        line: i + 1,
                        lang: words.next().unwrap_or("").to_owned(),
                        tag: words.next().map(str::to_owned),
                        body: String::new(),
                    });
                }
                Some(block) => out.push(block),
            }
        } else if let Some(block) = current.as_mut() {
            block.body.push_str(text);
            block.body.push('\n');
        }
    }
    match current {
        Some(block) => Err(format!("line {}: unterminated code block", block.line)),
        None => Ok(out),
    }
}
