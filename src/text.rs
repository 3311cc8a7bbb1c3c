//! Small helpers for text printed to people.

/// `n` and the noun in the right number: "1 person", "2 people", "0 alerts".
pub fn count(n: impl Into<i128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn singular_and_plural() {
        assert_eq!(count(1usize as u64, "person", "people"), "1 person");
        assert_eq!(count(2i64, "person", "people"), "2 people");
        assert_eq!(count(0u32, "alert", "alerts"), "0 alerts");
    }
}
