import NanaWire

/// A hook run in the client process around NanaSQLite's five points (spec §6.1).
///
/// Hooks belong to a ``NanaDatabase`` value (``NanaDatabase/withHooks(_:)``) and run in this
/// process only: the daemon never sees them, so another client writing the same table is not
/// held to them. Constraints every process must respect belong in the daemon.
///
/// Every method has a default (pass the value through, do nothing), so a hook implements only
/// the points it needs. The hooks of a database run one after the other in list order; a
/// `beforeWrite` or `afterRead` gets the value the previous hook returned. An error thrown by a
/// `before…` or `afterRead` hook reaches the caller unchanged, and a write or delete it aborts
/// sends nothing to the daemon.
///
/// Which methods call which hook:
///
/// | Hook | Called by |
/// |---|---|
/// | `beforeWrite` | `set`, `upsert(key:_:)`, `update`, `batchUpdate`, `batchUpdatePartial`, `setDefault` when the key is missing (and so `setModel` and `set` of an `Encodable`) |
/// | `onWriteSuccess` | after each of those writes is acknowledged, once per key written, batches included |
/// | `afterRead` | `get` and `getFresh` when the key exists, `batchGet` (and so `get(_:as:)` and `getModel`), `pop`, `setDefault` |
/// | `beforeDelete` | `delete`, `pop`, `batchDelete`, for keys that exist |
/// | `onDeleteSuccess` | after `delete`, `pop` and `batchDelete`, once per key deleted |
///
/// As in NanaSQLite, `values()`, `items()`, `toDict()`, `copy()`, `clear()`, the SQL helpers and
/// direct SQL run no hooks. `increment` and `patch` run none either: the daemon computes the new
/// value, so there is no point in this process where it could be checked before it is stored.
public protocol NanaHook: Sendable {
    /// Returns the value to store (possibly transformed); throw to abort the write.
    func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue
    /// After a write is acknowledged. `oldValue` is the previous value when the hook asked for it
    /// (``wantsOldValue``) and the key existed, else nil. `value` is what was stored.
    func onWriteSuccess(_ db: NanaDatabase, key: String, value: NanaValue, oldValue: NanaValue?) async
    /// Returns the value handed to the caller (possibly transformed); the stored value is untouched.
    func afterRead(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue
    /// Before a key that exists is deleted; throw to abort the delete.
    func beforeDelete(_ db: NanaDatabase, key: String) async throws
    /// After a delete is acknowledged. `oldValue` is the deleted value when the hook asked for it
    /// (``wantsOldValue``), else nil.
    func onDeleteSuccess(_ db: NanaDatabase, key: String, oldValue: NanaValue?) async
    /// Whether onWriteSuccess/onDeleteSuccess need the old value (costs a read per write). Default false.
    var wantsOldValue: Bool { get }
    /// Restricts the hook to keys with this prefix (nil = all keys), compared byte for byte in
    /// UTF-8. NanaSQLite's key_pattern is a regex with a ReDoS guard; a prefix is the safe subset
    /// (spec §6.2 [REC]). Default nil.
    var keyPrefix: String? { get }
}

extension NanaHook {
    public func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue { value }
    public func onWriteSuccess(_ db: NanaDatabase, key: String, value: NanaValue, oldValue: NanaValue?) async {}
    public func afterRead(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue { value }
    public func beforeDelete(_ db: NanaDatabase, key: String) async throws {}
    public func onDeleteSuccess(_ db: NanaDatabase, key: String, oldValue: NanaValue?) async {}
    public var wantsOldValue: Bool { false }
    public var keyPrefix: String? { nil }

    /// Whether this hook runs for `key`.
    func applies(to key: String) -> Bool {
        guard let prefix = keyPrefix else { return true }
        return key.utf8.starts(with: prefix.utf8)
    }
}

// MARK: - Built-in hooks

/// NanaSQLite's `CheckHook`: refuses a write when `check(key, value)` is false, with a
/// `NanaSQLiteValidationError` ``NanaWire/NanaRemoteError`` carrying `errorMessage`.
///
/// ```swift
/// let db = try await client.open("app.db").withHooks([
///     CheckHook(errorMessage: "age must be positive", keyPrefix: "user:") { _, value in
///         (value["age"]?.int64Value ?? 0) > 0
///     },
/// ])
/// ```
public struct CheckHook: NanaHook {
    public let check: @Sendable (String, NanaValue) -> Bool
    /// The message of the error a refused write throws; generic by default, as NanaSQLite's.
    public let errorMessage: String
    public let keyPrefix: String?

    public init(errorMessage: String = "Check constraint failed", keyPrefix: String? = nil, _ check: @escaping @Sendable (String, NanaValue) -> Bool) {
        self.check = check
        self.errorMessage = errorMessage
        self.keyPrefix = keyPrefix
    }

    public func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        guard check(key, value) else { throw NanaRemoteError(.validation, errorMessage) }
        return value
    }
}

/// NanaSQLite's `PydanticHook` / `validator=` for a `Codable` model: a value written must decode
/// as `Model` (through `JSONDecoder`, as ``NanaWire/NanaValue/decode(as:decoder:)``), else the
/// write is refused in this process with `NanaSQLiteValidationError` "Model validation failed"
/// (the decoding error is not included, as NanaSQLite keeps field names and values out of its
/// messages).
///
/// With `coerce`, the value stored is the model encoded again (``NanaWire/NanaValue/init(encoding:encoder:)``):
/// unknown fields dropped, fields in the model's order, `nil` optionals left out. Without it
/// the value is stored as given. Reads are left as they are.
///
/// A value in ``NanaDatabase/setModel(_:_:)``'s wrapper (`__pydantic_model__` and
/// `__pydantic_data__`) is checked (and coerced) by its `__pydantic_data__`, so `setModel` of
/// a `Model` passes.
public struct ModelHook<Model: Codable & Sendable>: NanaHook {
    public let coerce: Bool
    public let keyPrefix: String?

    public init(_ model: Model.Type, coerce: Bool = false, keyPrefix: String? = nil) {
        self.coerce = coerce
        self.keyPrefix = keyPrefix
    }

    public func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        if case .map(var wrapper) = value, wrapper["__pydantic_model__"] != nil, let data = wrapper["__pydantic_data__"] {
            wrapper["__pydantic_data__"] = try validated(data)
            return .map(wrapper)
        }
        return try validated(value)
    }

    private func validated(_ value: NanaValue) throws -> NanaValue {
        let model: Model
        do {
            model = try value.decode(as: Model.self)
        } catch {
            throw NanaRemoteError(.validation, "Model validation failed")
        }
        guard coerce else { return value }
        do {
            return try NanaValue(encoding: model)
        } catch {
            throw NanaRemoteError(.validation, "Model validation failed")
        }
    }
}
