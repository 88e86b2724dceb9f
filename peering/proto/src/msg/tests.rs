#[test]
fn placeholder_compiles() {
    assert_eq!(1 + 1, 2);
}
