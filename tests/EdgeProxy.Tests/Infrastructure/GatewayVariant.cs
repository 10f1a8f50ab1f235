namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// One of the four ways a request can cross the gateway: the HTTP/1.1 fast path on or off
/// (<c>HTTP1_FAST_PATH</c>) × the gateway's epoll transport or Kestrel's socket transport
/// (<c>TRANSPORT</c>). A behaviour test takes the variant as a theory argument
/// (<c>[MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]</c>) and
/// passes it to <see cref="Apply"/>, so every case runs on every path and transport; the name shows
/// in the test's display name ("fast+epoll").
/// </summary>
public sealed record GatewayVariant(bool FastPath, string Transport)
{
    public static readonly GatewayVariant FastEpoll = new(true, "epoll");
    public static readonly GatewayVariant FastSockets = new(true, "sockets");
    public static readonly GatewayVariant GeneralEpoll = new(false, "epoll");
    public static readonly GatewayVariant GeneralSockets = new(false, "sockets");

    /// <summary>The four variants' names.</summary>
    public static IReadOnlyList<string> Names => [FastEpoll.Name, FastSockets.Name, GeneralEpoll.Name, GeneralSockets.Name];

    /// <summary>The four variants as theory data.</summary>
    public static TheoryData<string> All => new(Names);

    /// <summary>Every variant with every one of <paramref name="cases"/>, as theory data (variant, case).</summary>
    public static TheoryData<string, string> With(params string[] cases)
    {
        var data = new TheoryData<string, string>();
        foreach (var variant in Names)
        {
            foreach (var c in cases)
            {
                data.Add(variant, c);
            }
        }
        return data;
    }

    public string Name => (FastPath ? "fast" : "general") + "+" + Transport;

    public static GatewayVariant Parse(string name) => name switch
    {
        "fast+epoll" => FastEpoll,
        "fast+sockets" => FastSockets,
        "general+epoll" => GeneralEpoll,
        "general+sockets" => GeneralSockets,
        _ => throw new ArgumentException($"unknown gateway variant '{name}'", nameof(name)),
    };

    /// <summary>Sets the variant's variables in a gateway's environment (they win over EDGEPROXY_TEST_TRANSPORT).</summary>
    public Dictionary<string, string> Apply(IDictionary<string, string>? environment = null)
    {
        var env = new Dictionary<string, string>(environment ?? new Dictionary<string, string>())
        {
            ["HTTP1_FAST_PATH"] = FastPath ? "on" : "off",
            ["TRANSPORT"] = Transport,
        };
        return env;
    }

    public override string ToString() => Name;
}

/// <summary>
/// The test matrix's trait. <see cref="Variants"/>: the test takes a <see cref="GatewayVariant"/>
/// and runs all four itself. <see cref="Rerun"/>: a behaviour test that starts its gateways with the
/// harness's defaults; test.sh runs these classes once more for each other combination of
/// HTTP1_FAST_PATH and TRANSPORT (EDGEPROXY_TEST_FAST_PATH, EDGEPROXY_TEST_TRANSPORT). Either way
/// every behaviour runs on every path and transport, selected by the trait, not by a class list.
/// </summary>
public static class Matrix
{
    public const string Trait = "Matrix";
    public const string Variants = "variants";
    public const string Rerun = "rerun";
}
