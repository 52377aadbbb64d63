/// A bounded buffer one event loop appends to and a writer off the loop empties now and
/// then (by asking the loop for `drain()`). Not thread-safe by design, like `LoopMetrics`:
/// the loop never waits for the writer; when the writer falls behind, records are dropped
/// and counted instead.
public final class LoopBuffer<Element> {
    public let capacity: Int
    private var items: [Element] = []
    private var dropped: UInt64 = 0

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        items.reserveCapacity(min(self.capacity, 256))
    }

    /// Keeps `item` unless the buffer is full; then it is dropped and counted.
    @inlinable
    public func append(_ item: Element) {
        if isFull {
            noteDropped()
        } else {
            store(item)
        }
    }

    @usableFromInline
    var isFull: Bool { items.count >= capacity }

    @usableFromInline
    func store(_ item: Element) {
        items.append(item)
    }

    @usableFromInline
    func noteDropped() {
        dropped &+= 1
    }

    /// What was buffered since the last drain, and how many records were dropped meanwhile.
    public func drain() -> (items: [Element], dropped: UInt64) {
        let result = (items, dropped)
        items = []
        items.reserveCapacity(min(capacity, 256))
        dropped = 0
        return result
    }
}
