using System.Globalization;
using System.Text;

namespace EdgeProxy.Forwarding;

/// <summary>
/// `Date: …\r\n` for fast-path responses (RFC 9110 §6.6.1: an origin server with a clock sends
/// it; Kestrel adds it to every response, so the fast path does too), formatted once per second.
/// </summary>
internal static class HttpDateLine
{
    private static Entry? _current;

    public static byte[] Current
    {
        get
        {
            var second = Environment.TickCount64 / 1000;
            var entry = _current;
            if (entry is null || entry.Second != second)
            {
                var line = "Date: " + DateTimeOffset.UtcNow.ToString("r", CultureInfo.InvariantCulture) + "\r\n";
                entry = new Entry(second, Encoding.ASCII.GetBytes(line));
                _current = entry;
            }
            return entry.Line;
        }
    }

    private sealed record Entry(long Second, byte[] Line);
}
