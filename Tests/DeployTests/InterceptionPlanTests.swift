import Deploy
import Testing

@Suite struct InterceptionPlanTests {
    private func lines(_ steps: [IPTablesStep], _ backend: IPTablesBackend = .nft) -> [String] {
        steps.map { $0.shellLine(backend) }
    }

    @Test func defaultsRedirectBothDirectionsWithTheExemptions() {
        let plan = lines(InterceptionPlan.install(InterceptionOptions(), family: .v4))
        #expect(plan.contains("iptables-nft -t nat -A EINO_OUTPUT -m owner --uid-owner 7102 -j RETURN"))
        #expect(plan.contains("iptables-nft -t nat -A EINO_OUTPUT -d 127.0.0.0/8 -j RETURN"))
        #expect(plan.contains("iptables-nft -t nat -A EINO_REDIRECT -p tcp -j REDIRECT --to-ports 7140"))
        #expect(plan.contains("iptables-nft -t nat -A EINO_INBOUND -p tcp --dport 7191 -j RETURN"))
        #expect(plan.contains("iptables-nft -t nat -A EINO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 7143"))
        // The exemptions come before the jump to the redirect, in each chain.
        let owner = plan.firstIndex { $0.contains("--uid-owner") }!
        let toRedirect = plan.firstIndex { $0.hasSuffix("-A EINO_OUTPUT -j EINO_REDIRECT") }!
        #expect(owner < toRedirect)
    }

    @Test func chainsAreMadeFirstAndJumpsComeLastOnlyWhenAbsent() {
        let steps = InterceptionPlan.install(InterceptionOptions(), family: .v4)
        #expect(steps.prefix(4).allSatisfy { $0.arguments[2] == "-N" && $0.fallback?[2] == "-F" })
        let jumps = steps.suffix(2)
        #expect(jumps.map { $0.arguments[3] } == ["PREROUTING", "OUTPUT"])
        for jump in jumps {
            guard case .unless(let check) = jump.guarding else { Issue.record("jump without a check"); continue }
            #expect(check[2] == "-C")
            #expect(Array(check.dropFirst(3)) == Array(jump.arguments.dropFirst(3)))
        }
        // No other step appends to a built-in chain.
        #expect(steps.dropLast(2).allSatisfy { !["OUTPUT", "PREROUTING"].contains($0.arguments[3]) })
    }

    @Test func skipsGoToTheirFamilyAndRangesUseColons() {
        var options = InterceptionOptions()
        options.skipOutboundPorts = InterceptionPlan.parsePorts("22, 8000-8010")!
        options.skipInboundPorts = ["9090"]
        options.skipCIDRs = InterceptionPlan.parseCIDRs("10.0.0.0/8,fd00::/8")!
        options.proxyUID = 1337
        options.outboundPort = 15001
        let v4 = lines(InterceptionPlan.install(options, family: .v4))
        let v6 = lines(InterceptionPlan.install(options, family: .v6))
        #expect(v4.contains("iptables-nft -t nat -A EINO_OUTPUT -d 10.0.0.0/8 -j RETURN"))
        #expect(!v4.contains { $0.contains("fd00::/8") })
        #expect(v6.contains("ip6tables-nft -t nat -A EINO_OUTPUT -d fd00::/8 -j RETURN"))
        #expect(v6.contains("ip6tables-nft -t nat -A EINO_OUTPUT -d ::1/128 -j RETURN"))
        #expect(!v6.contains { $0.contains("10.0.0.0/8") })
        #expect(v4.contains("iptables-nft -t nat -A EINO_OUTPUT -p tcp --dport 8000:8010 -j RETURN"))
        #expect(v4.contains("iptables-nft -t nat -A EINO_OUTPUT -p tcp --dport 22 -j RETURN"))
        #expect(v4.contains("iptables-nft -t nat -A EINO_INBOUND -p tcp --dport 9090 -j RETURN"))
        #expect(v4.contains("iptables-nft -t nat -A EINO_OUTPUT -m owner --uid-owner 1337 -j RETURN"))
        #expect(v4.contains("iptables-nft -t nat -A EINO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"))
    }

    @Test func legacyBackendAndBothFamilies() {
        let plan = lines(InterceptionPlan.install(InterceptionOptions(), families: [.v4, .v6]), .legacy)
        #expect(plan.first == "iptables-legacy -t nat -N EINO_OUTPUT || iptables-legacy -t nat -F EINO_OUTPUT")
        #expect(plan.last == "ip6tables-legacy -t nat -C OUTPUT -p tcp -j EINO_OUTPUT || ip6tables-legacy -t nat -A OUTPUT -p tcp -j EINO_OUTPUT")
        #expect(plan.count == 2 * InterceptionPlan.install(InterceptionOptions(), family: .v4).count)
    }

    @Test func removeDeletesJumpsThenFlushesThenDeletesChains() {
        let plan = lines(InterceptionPlan.remove(families: [.v4]))
        #expect(plan == [
            "iptables-nft -t nat -C PREROUTING -p tcp -j EINO_INBOUND && iptables-nft -t nat -D PREROUTING -p tcp -j EINO_INBOUND",
            "iptables-nft -t nat -C OUTPUT -p tcp -j EINO_OUTPUT && iptables-nft -t nat -D OUTPUT -p tcp -j EINO_OUTPUT",
            "iptables-nft -t nat -S EINO_OUTPUT && iptables-nft -t nat -F EINO_OUTPUT",
            "iptables-nft -t nat -S EINO_REDIRECT && iptables-nft -t nat -F EINO_REDIRECT",
            "iptables-nft -t nat -S EINO_INBOUND && iptables-nft -t nat -F EINO_INBOUND",
            "iptables-nft -t nat -S EINO_IN_REDIRECT && iptables-nft -t nat -F EINO_IN_REDIRECT",
            "iptables-nft -t nat -S EINO_OUTPUT && iptables-nft -t nat -X EINO_OUTPUT",
            "iptables-nft -t nat -S EINO_REDIRECT && iptables-nft -t nat -X EINO_REDIRECT",
            "iptables-nft -t nat -S EINO_INBOUND && iptables-nft -t nat -X EINO_INBOUND",
            "iptables-nft -t nat -S EINO_IN_REDIRECT && iptables-nft -t nat -X EINO_IN_REDIRECT",
        ])
    }

    @Test func parsingLists() {
        #expect(InterceptionPlan.parsePorts("") == [])
        #expect(InterceptionPlan.parsePorts("22,443") == ["22", "443"])
        #expect(InterceptionPlan.parsePorts("1000:2000") == ["1000:2000"])
        #expect(InterceptionPlan.parsePorts("0") == nil)
        #expect(InterceptionPlan.parsePorts("70000") == nil)
        #expect(InterceptionPlan.parsePorts("20-10") == nil)
        #expect(InterceptionPlan.parsePorts("http") == nil)
        #expect(InterceptionPlan.parseCIDRs("10.0.0.0/8, 192.168.1.1") == ["10.0.0.0/8", "192.168.1.1"])
        #expect(InterceptionPlan.parseCIDRs("fd00::/8") == ["fd00::/8"])
        #expect(InterceptionPlan.parseCIDRs("10.0.0.0/33") == nil)
        #expect(InterceptionPlan.parseCIDRs("10.0.0/8") == nil)
        #expect(InterceptionPlan.parseCIDRs("example.com") == nil)
    }
}
