import Foundation

/// A value that several threads of a test share (what a callback recorded, what each racer got),
/// read and changed under a lock.
package final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    /// A box holding `value`.
    package init(_ value: Value) { stored = value }

    /// The value now.
    package var value: Value { lock.withLock { stored } }

    /// Changes the value in place, under the lock.
    package func mutate(_ change: (inout Value) -> Void) { lock.withLock { change(&stored) } }
}

extension LockedBox {
    /// Appends `element` to the array in the box (a callback's record).
    package func append<Element>(_ element: Element) where Value == [Element] {
        mutate { $0.append(element) }
    }
}
