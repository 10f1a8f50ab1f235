namespace EdgeProxy.Forwarding;

/// <summary>What a Connection field value says (RFC 9110 §7.6.1), as <see cref="HeaderRules.ReadConnection"/> reads it.</summary>
[Flags]
internal enum ConnectionTokens : byte
{
    None = 0,

    /// <summary>`close`: the connection ends after this message.</summary>
    Close = 1,

    /// <summary>`keep-alive` (meaningful from an HTTP/1.0 peer).</summary>
    KeepAlive = 2,

    /// <summary>It names a field beyond the hop-by-hop ones (which go anyway): that field is hop-by-hop too and is not relayed.</summary>
    NamesFields = 4,
}
