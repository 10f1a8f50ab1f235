using System.Text;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The byte-name map answers as a case-insensitive dictionary of the same names would.</summary>
public sealed class AsciiNameMapTests
{
    [Fact]
    public void Lookups_agree_with_a_case_insensitive_dictionary()
    {
        var names = HeaderRules.HopByHop.Concat(HeaderRules.RequestReplaced).Concat(HeaderRules.ResponseReplaced)
            .Concat(["Content-Type", "Date", "Cache-Control", "X-Accel-Buffering", "Origin", "HTTP2-Settings", "Access-Control-Request-Method"])
            .Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        var expected = names.Select((n, i) => (n, i)).ToDictionary(e => e.n, e => e.i, StringComparer.OrdinalIgnoreCase);
        var map = new AsciiNameMap<int>(expected);

        var probes = names.SelectMany(n => new[] { n, n.ToLowerInvariant(), n.ToUpperInvariant(), n + "x", n[..^1], "x" + n[1..], n[..^1] + "@", n.Replace('-', '\r') })
            .Concat(["", "A", "Hosu", "Tost", "X-Forwarded-Fox", "Content-Lengti", "Keep-Alivf"]);
        foreach (var probe in probes)
        {
            var found = map.TryGetValue(Encoding.ASCII.GetBytes(probe), out var value);
            Assert.True(expected.TryGetValue(probe, out var want) == found, probe);
            Assert.True(!found || want == value, probe);
        }
    }
}
