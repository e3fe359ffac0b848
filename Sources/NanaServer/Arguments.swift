import NanaWire

/// A request's named arguments, read with Python-like errors: a missing or unexpected argument
/// is a `TypeError`, as calling the NanaSQLite method wrongly would be.
struct Arguments {
    let method: String
    let params: NanaParamList

    /// These arguments as `method` declares them: a name it does not declare is a
    /// `TypeError`, and a name given by one of its aliases is renamed to the declared one.
    func checked(against method: WireMethod) throws(NanaRemoteError) -> Arguments {
        var aliased = false
        for name in params.names where !method.acceptedNames.contains(name) {
            throw NanaRemoteError(.typeError, "\(self.method)() got an unexpected keyword argument '\(name)'")
        }
        guard method.hasAliases else { return self }
        var entries = params.entries
        for parameter in method.parameters where !parameter.aliases.isEmpty {
            for i in entries.indices where parameter.aliases.contains(entries[i].key) {
                if params[parameter.name] != nil || aliased {
                    throw NanaRemoteError(.typeError, "\(self.method)() got multiple values for argument '\(parameter.name)'")
                }
                entries[i].key = parameter.name
                aliased = true
            }
            aliased = false
        }
        return Arguments(method: self.method, params: NanaParamList(entries))
    }

    func has(_ name: String) -> Bool { params[name] != nil }

    func value(_ name: String) throws(NanaRemoteError) -> NanaValue {
        guard let v = params[name] else { throw NanaRemoteError(.typeError, "\(method)() missing required argument: '\(name)'") }
        return v
    }

    func string(_ name: String) throws(NanaRemoteError) -> String {
        let v = try value(name)
        guard case .string(let s) = v else { throw wrongType(name, "str", v) }
        return s
    }

    func optionalString(_ name: String) throws(NanaRemoteError) -> String? {
        guard let v = params[name], !v.isNil else { return nil }
        guard case .string(let s) = v else { throw wrongType(name, "str", v) }
        return s
    }

    func int(_ name: String) throws(NanaRemoteError) -> Int64 {
        let v = try value(name)
        guard case .int(let i) = v else { throw wrongType(name, "int", v) }
        return i
    }

    func int(_ name: String, default fallback: Int64) throws(NanaRemoteError) -> Int64 {
        guard let v = params[name], !v.isNil else { return fallback }
        guard case .int(let i) = v else { throw wrongType(name, "int", v) }
        return i
    }

    func bool(_ name: String, default fallback: Bool) throws(NanaRemoteError) -> Bool {
        guard let v = params[name], !v.isNil else { return fallback }
        guard case .bool(let b) = v else { throw wrongType(name, "bool", v) }
        return b
    }

    func strings(_ name: String) throws(NanaRemoteError) -> [String] {
        let v = try value(name)
        guard case .array(let items) = v else { throw wrongType(name, "list", v) }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .string(let s) = item else {
                throw NanaRemoteError(.typeError, "\(method)(): every key in '\(name)' must be str, not \(item.typeName)")
            }
            out.append(s)
        }
        return out
    }

    func map(_ name: String) throws(NanaRemoteError) -> NanaParams {
        let v = try value(name)
        guard case .map(let m) = v else { throw wrongType(name, "dict", v) }
        return m
    }

    private func wrongType(_ name: String, _ expected: String, _ got: NanaValue) -> NanaRemoteError {
        if case .uint = got { return NanaRemoteError(.valueError, "\(method)(): '\(name)' is out of the 64-bit signed range") }
        return NanaRemoteError(.typeError, "\(method)(): '\(name)' must be \(expected), not \(got.typeName)")
    }
}
