import NanaStorage
import NanaWire

/// NanaSQLite's `increment` and `patch` (behaviour spec §3.6): the new value is computed on the
/// writer from the row as it is in SQLite, so concurrent calls from any number of clients
/// never lose an update.
enum AtomicUpdates {
    /// The number `increment` adds, or the start value it uses.
    static func number(_ value: NanaValue, _ name: String) throws(StorageError) -> NanaValue {
        switch value {
        case .int, .uint: return value
        case .double(let d):
            guard d.isFinite else { throw StorageError(.validation, "\(name) must be finite") }
            return value
        case .bool: throw StorageError(.validation, "\(name) must be an int or float, not bool")
        default: throw StorageError(.validation, "\(name) must be an int or float, not \(pythonType(value))")
        }
    }

    /// `base + amount`: int + int stays int (refused past 64 bits), anything with a float is a float.
    static func add(_ base: NanaValue, _ amount: NanaValue) throws(StorageError) -> NanaValue {
        switch (base, amount) {
        case (.int(let a), .int(let b)):
            let (sum, overflow) = a.addingReportingOverflow(b)
            guard !overflow else { throw StorageError(.validation, "increment result is out of the 64-bit integer range") }
            return .int(sum)
        default:
            guard let a = asDouble(base), let b = asDouble(amount) else {
                throw StorageError(.validation, "increment result is out of the 64-bit integer range")
            }
            let sum = a + b
            guard sum.isFinite else { throw StorageError(.validation, "increment result must be finite") }
            return .double(sum)
        }
    }

    /// The transform `increment` applies to the stored value.
    static func increment(key: String, amount: NanaValue, field: String?, defaultValue: NanaValue?) throws(StorageError)
        -> @Sendable (NanaValue?) throws(StorageError) -> NanaValue
    {
        let amount = try number(amount, "amount")
        let start = try defaultValue.map { (d) throws(StorageError) in try number(d, "default") }
        if let field {
            guard !field.isEmpty else { throw StorageError(.validation, "field must be a non-empty string") }
            return { (stored) throws(StorageError) -> NanaValue in
                var object: NanaParams
                switch stored {
                case nil:
                    guard start != nil else { throw StorageError(.keyNotFound, key) }
                    object = [:]
                case .map(let m)?: object = m
                case let other?: throw StorageError(.validation, "stored value must be a dict when field is specified, not \(pythonType(other))")
                }
                let base: NanaValue
                if let current = object[NanaKey(field)] {
                    base = try number(current, "stored field '\(field)'")
                } else if let start {
                    base = start
                } else {
                    throw StorageError(.keyNotFound, field)
                }
                object[NanaKey(field)] = try add(base, amount)
                return .map(object)
            }
        }
        return { (stored) throws(StorageError) -> NanaValue in
            guard let stored else {
                guard let start else { throw StorageError(.keyNotFound, key) }
                return try add(start, amount)
            }
            return try add(try number(stored, "stored value"), amount)
        }
    }

    /// The transform `patch` applies: a shallow merge of `changes` into the stored dict.
    static func patch(key: String, changes: NanaValue, create: Bool) throws(StorageError) -> @Sendable (NanaValue?) throws(StorageError) -> NanaValue {
        guard case .map(let changes) = changes else { throw StorageError(.validation, "changes must be a dict") }
        return { (stored) throws(StorageError) -> NanaValue in
            var object: NanaParams
            switch stored {
            case nil:
                guard create else { throw StorageError(.keyNotFound, key) }
                object = [:]
            case .map(let m)?: object = m
            case let other?: throw StorageError(.validation, "stored value must be a dict, not \(pythonType(other))")
            }
            for (name, value) in changes { object[name] = value }
            return .map(object)
        }
    }

    /// Runs a transform over the table's row on the writer, converting between the stored bytes
    /// and values.
    static func run(
        on table: KeyValueTable,
        key: String,
        owner: TransactionToken?,
        _ transform: @escaping @Sendable (NanaValue?) throws(StorageError) -> NanaValue,
        completion: @escaping @Sendable (Result<EncodedValue, StorageError>) -> Void
    ) {
        table.update(key, transform: { (old) throws(StorageError) -> StorableValue in
            let current: NanaValue?
            do {
                current = try old.map { (encoded) throws(MessagePackError) in try MessagePackReader.decode(encoded.bytes) }
            } catch {
                throw StorageError(.database, "stored value of '\(key)' could not be read: \(error)")
            }
            let new = try transform(current)
            do throws(NanaRemoteError) {
                return try ValueCodec.storable(new)
            } catch {
                // Keep the family the value's problem belongs to (TypeError for bytes, …).
                let kind: StorageError.Kind = error.type == .typeError ? .typeError : error.type == .valueError ? .valueError : .validation
                throw StorageError(kind, error.message)
            }
        }, owner: owner, completion: completion)
    }

    private static func asDouble(_ v: NanaValue) -> Double? {
        switch v {
        case .int(let i): Double(i)
        case .uint(let u): Double(u)
        case .double(let d): d
        default: nil
        }
    }

    /// Python's name for a value's type, as NanaSQLite's messages say it.
    static func pythonType(_ v: NanaValue) -> String {
        v.isNil ? "NoneType" : v.typeName
    }
}
