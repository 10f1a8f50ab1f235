using System.Text;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>One server-sent event: its `event:` name ("message" when absent) and its joined `data:` lines.</summary>
internal readonly record struct SseEvent(string Event, string Data);

/// <summary>
/// Reads server-sent events one at a time from a response body, as a browser's EventSource parses
/// them (WHATWG HTML §9.2.6: lines, blank line ends an event, `:` comments). Returns each event as
/// soon as its terminating blank line arrives, so tests can react to event k before k+1 exists.
/// </summary>
internal sealed class SseReader(Stream body)
{
    private readonly StreamReader _reader = new(body, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1024);

    /// <summary>The next event, or null at a clean end of the body. An abortive end throws (IOException).</summary>
    public async Task<SseEvent?> ReadAsync(CancellationToken cancellationToken)
    {
        string? name = null;
        StringBuilder? data = null;
        // Bounded by the body: every pass consumes one line, and the server ends the body eventually
        // (or the caller's token does).
        while (true)
        {
            var line = await _reader.ReadLineAsync(cancellationToken);
            if (line is null)
            {
                // A trailing event without its blank line is incomplete: not dispatched (as in browsers).
                return null;
            }
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    return new SseEvent(name ?? "message", data.ToString());
                }
                name = null;
                continue;
            }
            if (line[0] == ':')
            {
                continue;
            }
            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }
            switch (field)
            {
                case "event":
                    name = value;
                    break;
                case "data":
                    data = data is null ? new StringBuilder(value) : data.Append('\n').Append(value);
                    break;
            }
        }
    }

    /// <summary>The next raw line (NDJSON), or null at a clean end.</summary>
    public Task<string?> ReadLineAsync(CancellationToken cancellationToken) => _reader.ReadLineAsync(cancellationToken).AsTask();
}
