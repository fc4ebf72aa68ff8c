//! The README's library example is `examples/quickstart.rs`, word for word,
//! so the code a new user copies is code that compiles.

#[test]
fn the_readme_library_example_is_examples_quickstart() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.rs"
    ))
    .unwrap();
    // The example without its leading `//!` doc comment.
    let code: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let section = readme
        .split("## Use it as a library")
        .nth(1)
        .expect("README has a library section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the library section has a rust block");
    assert_eq!(
        block, code,
        "README's example differs from examples/quickstart.rs"
    );
}
