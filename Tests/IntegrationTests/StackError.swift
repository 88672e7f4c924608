/// A stack, a cluster or a helper program did not do what a test needs (not a finding about the product).
struct StackError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
