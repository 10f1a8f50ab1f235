using System.Text;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>What every path must do with a corpus request.</summary>
public enum Outcome
{
    /// <summary>Relayed: a 2xx from the recording backend, and exactly one request reached it.</summary>
    Forwarded,

    /// <summary>Refused: a 4xx, and nothing reached the backend.</summary>
    Refused,

    /// <summary>No fixed answer: only that every path answers alike (same status class, same bytes upstream).</summary>
    Agree,
}

/// <summary>One raw request: a name, the outcome every path must give, and field names that must never reach the backend.</summary>
public sealed record RequestCase(string Name, Outcome Outcome, byte[] Raw, string[] NotForwarded);

/// <summary>
/// The differential corpus (<see cref="DifferentialTests"/>): malformed and edge-case HTTP/1.1
/// requests, raw bytes → case name and expected outcome, grown from RFC 9112's grammar (request
/// line, targets, fields, framing) and from what the two paths once disagreed on. Bytes are written
/// as C# strings and sent as Latin-1, one byte per char ("\u0001" is byte 0x01). Every request names
/// the backend `svc/m`, so a request that is not refused reaches the recording backend.
/// </summary>
public static class RequestCorpus
{
    private const string Line = "GET /svc/m/x HTTP/1.1\r\n";
    private const string HostGw = "Host: gw\r\n";

    public static IReadOnlyList<RequestCase> Cases { get; } = Build();

    public static TheoryData<string> Names
    {
        get
        {
            var names = new TheoryData<string>();
            foreach (var c in Cases)
            {
                names.Add(c.Name);
            }
            return names;
        }
    }

    public static RequestCase Get(string name) => Cases.Single(c => c.Name == name);

    private static List<RequestCase> Build()
    {
        var cases = new List<RequestCase>();
        void Add(string name, Outcome outcome, string raw, params string[] notForwarded)
        {
            if (cases.Any(c => c.Name == name))
            {
                throw new InvalidOperationException("duplicate corpus case " + name);
            }
            cases.Add(new RequestCase(name, outcome, Encoding.Latin1.GetBytes(raw), notForwarded));
        }
        // A GET of the proxy route with extra field lines (each ending in CRLF).
        static string WithFields(string fields) => Line + HostGw + fields + "\r\n";
        static string Target(string target) => "GET " + target + " HTTP/1.1\r\n" + HostGw + "\r\n";

        // 1. Methods (RFC 9110 §9: case-sensitive); the gateway forwards seven, as spelled.
        Add("ok-get", Outcome.Forwarded, WithFields(""));
        Add("ok-head", Outcome.Forwarded, "HEAD /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("ok-post", Outcome.Forwarded, "POST /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
        Add("ok-post-empty", Outcome.Forwarded, "POST /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("ok-put", Outcome.Forwarded, "PUT /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Length: 3\r\n\r\nabc");
        Add("ok-delete", Outcome.Forwarded, "DELETE /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("ok-delete-body", Outcome.Forwarded, "DELETE /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Length: 3\r\n\r\nabc");
        Add("ok-patch", Outcome.Forwarded, "PATCH /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Length: 3\r\n\r\nabc");
        Add("ok-options", Outcome.Forwarded, "OPTIONS /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-lower-get", Outcome.Refused, "get /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-mixed-get", Outcome.Refused, "Get /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-lower-post", Outcome.Refused, "post /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Length: 2\r\n\r\n{}");
        Add("method-lower-head", Outcome.Refused, "head /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-lower-options", Outcome.Refused, "options /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-trace", Outcome.Refused, "TRACE /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-connect", Outcome.Refused, "CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\n\r\n");
        Add("method-connect-origin-form", Outcome.Refused, "CONNECT /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-propfind", Outcome.Refused, "PROPFIND /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-unknown-token", Outcome.Refused, "FOO /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-get-suffix", Outcome.Refused, "GETX /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-non-token", Outcome.Refused, "G@T /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-non-ascii", Outcome.Refused, "G\u00c9T /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-empty", Outcome.Refused, " /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("method-pri-on-http1", Outcome.Refused, "PRI /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");

        // 2. Request-line whitespace and version (RFC 9112 §3: single SP separators).
        Add("line-two-spaces-after-method", Outcome.Refused, "GET  /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("line-two-spaces-before-version", Outcome.Agree, "GET /svc/m/x  HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("line-tab-separator", Outcome.Refused, "GET\t/svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("line-trailing-space", Outcome.Refused, "GET /svc/m/x HTTP/1.1 \r\n" + HostGw + "\r\n");
        Add("line-leading-space", Outcome.Refused, " GET /svc/m/x HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("line-no-version", Outcome.Refused, "GET /svc/m/x\r\n" + HostGw + "\r\n");
        Add("line-bare-cr-in-line", Outcome.Refused, "GET /svc/m/x\rHTTP/1.1\r\n" + HostGw + "\r\n");
        Add("line-leading-empty-line", Outcome.Agree, "\r\n" + Line + HostGw + "\r\n");
        Add("version-1.0", Outcome.Forwarded, "GET /svc/m/x HTTP/1.0\r\n" + HostGw + "\r\n");
        Add("version-1.0-keep-alive", Outcome.Forwarded, "GET /svc/m/x HTTP/1.0\r\n" + HostGw + "Connection: keep-alive\r\n\r\n");
        Add("version-lowercase", Outcome.Agree, "GET /svc/m/x http/1.1\r\n" + HostGw + "\r\n");
        Add("version-1.2", Outcome.Agree, "GET /svc/m/x HTTP/1.2\r\n" + HostGw + "\r\n");
        Add("version-2.0", Outcome.Agree, "GET /svc/m/x HTTP/2.0\r\n" + HostGw + "\r\n");
        Add("version-11", Outcome.Agree, "GET /svc/m/x HTTP/11\r\n" + HostGw + "\r\n");
        Add("version-junk-suffix", Outcome.Refused, "GET /svc/m/x HTTP/1.1x\r\n" + HostGw + "\r\n");
        Add("version-bare-lf-line", Outcome.Agree, "GET /svc/m/x HTTP/1.1\n" + HostGw + "\r\n");
        Add("bare-lf-everywhere", Outcome.Agree, "GET /svc/m/x HTTP/1.1\nHost: gw\n\n");

        // 3. Request targets (RFC 9112 §3.2, RFC 3986): control bytes, DEL and non-ASCII are never
        //    forwarded; percent-escapes in the path are complete and never %00; no fragment.
        foreach (var b in Enumerable.Range(0, 0x20).Append(0x7F))
        {
            if (b is '\r' or '\n')
            {
                continue;   // end the line: the "bare CR/LF" cases below
            }
            Add($"target-path-ctl-{b:x2}", Outcome.Refused, Target("/svc/m/a" + (char)b + "b"));
            Add($"target-query-ctl-{b:x2}", Outcome.Refused, Target("/svc/m/a?q=" + (char)b + "b"));
        }
        Add("target-path-bare-cr", Outcome.Refused, Target("/svc/m/a\rb"));
        Add("target-path-space", Outcome.Refused, Target("/svc/m/a b"));
        Add("target-path-latin1", Outcome.Refused, Target("/svc/m/caf\u00e9"));
        Add("target-path-utf8", Outcome.Refused, Target("/svc/m/caf\u00c3\u00a9"));
        Add("target-path-0x80", Outcome.Refused, Target("/svc/m/a\u0080"));
        Add("target-path-0xff", Outcome.Refused, Target("/svc/m/a\u00ff"));
        Add("target-query-utf8", Outcome.Refused, Target("/svc/m/x?q=caf\u00c3\u00a9"));
        Add("target-path-pct00", Outcome.Refused, Target("/svc/m/a%00b"));
        Add("target-path-pct00-end", Outcome.Refused, Target("/svc/m/a%00"));
        Add("target-query-pct00", Outcome.Forwarded, Target("/svc/m/a?q=%00"));
        Add("target-path-pct-bad-hex", Outcome.Refused, Target("/svc/m/a%zzb"));
        Add("target-path-pct-one-digit", Outcome.Refused, Target("/svc/m/a%4"));
        Add("target-path-pct-one-digit-then-bad", Outcome.Refused, Target("/svc/m/a%4g"));
        Add("target-path-pct-alone", Outcome.Refused, Target("/svc/m/a%"));
        Add("target-query-pct-bad", Outcome.Forwarded, Target("/svc/m/a?q=100%"));
        Add("target-query-pct-zz", Outcome.Forwarded, Target("/svc/m/a?q=%zz"));
        Add("target-path-pct-upper-lower", Outcome.Forwarded, Target("/svc/m/a%2Fb%2fc%41"));
        Add("target-path-pct-utf8", Outcome.Forwarded, Target("/svc/m/caf%C3%A9"));
        Add("target-path-pct-overlong", Outcome.Forwarded, Target("/svc/m/a%C0%AEb"));
        Add("target-path-pct-ff", Outcome.Forwarded, Target("/svc/m/a%ffb"));
        Add("target-fragment", Outcome.Refused, Target("/svc/m/a#frag"));
        Add("target-fragment-empty", Outcome.Refused, Target("/svc/m/a#"));
        Add("target-fragment-in-query", Outcome.Refused, Target("/svc/m/a?q=1#f"));
        Add("target-dot-segment", Outcome.Refused, Target("/svc/m/a/../b"));
        Add("target-dot-segment-single", Outcome.Refused, Target("/svc/m/a/./b"));
        Add("target-dot-segment-encoded", Outcome.Refused, Target("/svc/m/a/%2e%2e/b"));
        Add("target-dot-segment-encoded-slash", Outcome.Refused, Target("/svc/m/a/..%2fb"));
        Add("target-dot-segment-backslash", Outcome.Refused, Target("/svc/m/a/..%5Cb"));
        Add("target-dot-segment-trailing", Outcome.Refused, Target("/svc/m/a/.."));
        Add("target-dots-inside-names", Outcome.Forwarded, Target("/svc/m/a..b/.c/v1.2?x=../.."));
        Add("target-dot-segment-in-query", Outcome.Forwarded, Target("/svc/m/a?p=/../etc"));
        Add("target-rfc3986-extra-chars", Outcome.Forwarded, Target("/svc/m/a\"<>\\^`{|}b?q={\"k\":[1]}"));
        Add("target-sub-delims", Outcome.Forwarded, Target("/svc/m/a;b=c,d!$&'()*+@:?q=a:b@c/d?e"));
        Add("target-double-slash", Outcome.Forwarded, Target("/svc/m//a//b/"));
        Add("target-query-only", Outcome.Forwarded, Target("/svc/m?x=1"));
        Add("target-empty-query", Outcome.Forwarded, Target("/svc/m/x?"));
        Add("target-no-rest", Outcome.Forwarded, Target("/svc/m"));
        Add("target-encoded-model", Outcome.Forwarded, Target("/svc/%6d/x"));
        Add("target-long-3000", Outcome.Forwarded, Target("/svc/m/" + new string('a', 3000)));
        Add("target-too-long", Outcome.Refused, Target("/svc/m/" + new string('a', 9000)));
        Add("target-empty", Outcome.Refused, "GET  HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("target-no-slash", Outcome.Refused, Target("svc/m/x"));
        Add("target-leading-double-slash", Outcome.Refused, Target("//svc/m/x"));
        Add("target-unknown-model", Outcome.Refused, Target("/svc/nope/x"));
        Add("target-absolute-form", Outcome.Forwarded, Target("http://gw/svc/m/x?q=1"));
        Add("target-absolute-form-other-host", Outcome.Refused, Target("http://other/svc/m/x"));
        Add("target-absolute-form-ctl", Outcome.Refused, Target("http://gw/svc/m/a\u0001b"));
        Add("target-absolute-form-userinfo", Outcome.Agree, Target("http://u@gw/svc/m/x"));
        Add("target-absolute-form-https", Outcome.Agree, Target("https://gw/svc/m/x"));
        Add("target-absolute-form-fragment", Outcome.Refused, Target("http://gw/svc/m/x#f"));
        Add("target-asterisk-options", Outcome.Agree, "OPTIONS * HTTP/1.1\r\n" + HostGw + "\r\n");
        Add("target-asterisk-get", Outcome.Refused, Target("*"));

        // 4. Host (RFC 9112 §3.2, RFC 3986 §3.2.2): exactly one, a valid authority.
        Add("host-missing", Outcome.Refused, Line + "\r\n");
        Add("host-duplicate", Outcome.Refused, Line + HostGw + "Host: gw\r\n\r\n");
        Add("host-duplicate-different", Outcome.Refused, Line + HostGw + "Host: other\r\n\r\n");
        Add("host-list", Outcome.Refused, Line + "Host: gw, other\r\n\r\n");
        Add("host-empty", Outcome.Forwarded, Line + "Host:\r\n\r\n");
        Add("host-path-userinfo", Outcome.Refused, Line + "Host: gw/../x@evil\r\n\r\n");
        Add("host-userinfo", Outcome.Refused, Line + "Host: u@gw\r\n\r\n");
        Add("host-slash", Outcome.Refused, Line + "Host: gw/x\r\n\r\n");
        Add("host-pct", Outcome.Refused, Line + "Host: g%41w\r\n\r\n");
        Add("host-space", Outcome.Refused, Line + "Host: g w\r\n\r\n");
        Add("host-tab", Outcome.Refused, Line + "Host: g\tw\r\n\r\n");
        Add("host-ctl", Outcome.Refused, Line + "Host: g\u0001w\r\n\r\n");
        Add("host-del", Outcome.Refused, Line + "Host: g\u007fw\r\n\r\n");
        Add("host-non-ascii", Outcome.Refused, Line + "Host: g\u00c3\u00a9w\r\n\r\n");
        Add("host-bad-port", Outcome.Refused, Line + "Host: gw:8x\r\n\r\n");
        Add("host-empty-port", Outcome.Refused, Line + "Host: gw:\r\n\r\n");
        Add("host-port-too-big", Outcome.Refused, Line + "Host: gw:65536\r\n\r\n");
        Add("host-two-ports", Outcome.Refused, Line + "Host: gw:80:80\r\n\r\n");
        Add("host-star", Outcome.Refused, Line + "Host: g*w\r\n\r\n");
        Add("host-comma", Outcome.Refused, Line + "Host: g,w\r\n\r\n");
        Add("host-question", Outcome.Refused, Line + "Host: g?w\r\n\r\n");
        Add("host-hash", Outcome.Refused, Line + "Host: g#w\r\n\r\n");
        Add("host-backslash", Outcome.Refused, Line + "Host: g\\w\r\n\r\n");
        Add("host-ipv6-unclosed", Outcome.Refused, Line + "Host: [::1\r\n\r\n");
        Add("host-ipv6-bare", Outcome.Refused, Line + "Host: ::1\r\n\r\n");
        Add("host-ipv6-zone", Outcome.Refused, Line + "Host: [fe80::1%25eth0]\r\n\r\n");
        Add("host-port-only", Outcome.Refused, Line + "Host: :80\r\n\r\n");
        Add("host-ipv6-empty", Outcome.Refused, Line + "Host: []\r\n\r\n");
        Add("host-ipv6", Outcome.Forwarded, Line + "Host: [::1]:8080\r\n\r\n");
        Add("host-ipv4-port", Outcome.Forwarded, Line + "Host: 10.0.0.1:80\r\n\r\n");
        Add("host-port-max", Outcome.Forwarded, Line + "Host: gw:65535\r\n\r\n");
        Add("host-underscore-tilde", Outcome.Forwarded, Line + "Host: g_w~x-y.z\r\n\r\n");
        Add("host-sub-delims-kestrel-allows", Outcome.Forwarded, Line + "Host: g!w$&'()\r\n\r\n");
        Add("host-upper-case", Outcome.Forwarded, Line + "Host: GW.Example\r\n\r\n");
        Add("host-ows", Outcome.Forwarded, Line + "Host: \t gw \t\r\n\r\n");
        Add("host-obs-fold", Outcome.Refused, Line + "Host: gw\r\n x\r\n\r\n");

        // 5. Field names (RFC 9110 §5.1: a token, no whitespace before the colon).
        Add("name-space-before-colon", Outcome.Refused, WithFields("X-A : 1\r\n"));
        Add("name-tab-before-colon", Outcome.Refused, WithFields("X-A\t: 1\r\n"));
        Add("name-space-inside", Outcome.Refused, WithFields("X A: 1\r\n"));
        Add("name-empty", Outcome.Refused, WithFields(": 1\r\n"));
        Add("name-ctl", Outcome.Refused, WithFields("X-\u0001A: 1\r\n"));
        Add("name-del", Outcome.Refused, WithFields("X-\u007fA: 1\r\n"));
        Add("name-paren", Outcome.Refused, WithFields("X(A): 1\r\n"));
        Add("name-quote", Outcome.Refused, WithFields("X\"A: 1\r\n"));
        Add("name-slash", Outcome.Refused, WithFields("X/A: 1\r\n"));
        Add("name-non-ascii", Outcome.Refused, WithFields("X-\u00c9: 1\r\n"));
        Add("name-no-colon", Outcome.Refused, WithFields("X-A\r\n"));
        Add("name-leading-space-first-line", Outcome.Refused, Line + " X-A: 1\r\n" + HostGw + "\r\n");
        Add("name-all-tchars", Outcome.Forwarded, WithFields("!#$%&'*+-.^_`|~09azAZ: 1\r\n"));
        Add("name-no-space-after-colon", Outcome.Forwarded, WithFields("X-A:1\r\n"));
        Add("name-long-200", Outcome.Forwarded, WithFields("X-" + new string('n', 200) + ": 1\r\n"));
        Add("name-case-variants", Outcome.Forwarded, WithFields("x-lower: 1\r\nX-UPPER: 2\r\nx-MiXeD: 3\r\n"));

        // 6. Field values (RFC 9110 §5.5): visible ASCII, SP and HTAB; no obs-fold (RFC 9112 §5.2).
        foreach (var b in Enumerable.Range(0, 0x20).Append(0x7F))
        {
            if (b is '\t' or '\r' or '\n')
            {
                continue;
            }
            Add($"value-ctl-{b:x2}", Outcome.Refused, WithFields("X-A: a" + (char)b + "b\r\n"));
        }
        Add("value-tab-inside", Outcome.Forwarded, WithFields("X-A: a\tb\r\n"));
        Add("value-ows-around", Outcome.Forwarded, WithFields("X-A: \t a b \t\r\n"));
        Add("value-empty", Outcome.Forwarded, WithFields("X-A:\r\n"));
        Add("value-empty-spaces", Outcome.Forwarded, WithFields("X-A:   \r\n"));
        Add("value-bare-cr", Outcome.Refused, WithFields("X-A: a\rb\r\n"));
        Add("value-bare-lf-line-end", Outcome.Agree, WithFields("X-A: 1\n"));
        Add("value-obs-fold", Outcome.Refused, WithFields("X-A: a\r\n b\r\n"));
        Add("value-obs-fold-tab", Outcome.Refused, WithFields("X-A: a\r\n\tb\r\n"));
        Add("value-latin1", Outcome.Refused, WithFields("X-A: caf\u00e9\r\n"));
        Add("value-utf8", Outcome.Refused, WithFields("X-A: caf\u00c3\u00a9\r\n"));
        Add("value-long-7000", Outcome.Forwarded, WithFields("X-A: " + new string('v', 7000) + "\r\n"));
        Add("value-quoted-and-comment", Outcome.Forwarded, WithFields("X-A: \"q,\\\"x\" (c)\r\n"));
        Add("value-repeated-field", Outcome.Forwarded, WithFields("X-A: 1\r\nX-A: 2\r\nX-B: 3\r\nx-a: 4\r\n"));
        Add("fields-80", Outcome.Forwarded, WithFields(string.Concat(Enumerable.Range(0, 80).Select(i => $"X-F{i}: {i}\r\n"))));
        Add("fields-too-many", Outcome.Refused, WithFields(string.Concat(Enumerable.Range(0, 120).Select(i => $"X-F{i}: {i}\r\n"))));
        Add("fields-too-large", Outcome.Refused, WithFields(string.Concat(Enumerable.Range(0, 6).Select(i => $"X-F{i}: {new string('v', 7000)}\r\n"))));
        Add("head-ends-in-lf-only", Outcome.Agree, Line + HostGw + "\n");

        // 7. Content-Length (RFC 9110 §8.6, RFC 9112 §6.3): 1*DIGIT, one value.
        static string Post(string fields, string body) => "POST /svc/m/x HTTP/1.1\r\n" + HostGw + fields + "\r\n" + body;
        // Kestrel reads Content-Length with Utf8Parser, which takes a sign, and shows the application
        // only the number: the general path cannot see the '+'. Both paths frame the body again with
        // a Content-Length of their own, so the backend never sees the sign either.
        Add("cl-plus", Outcome.Forwarded, Post("Content-Length: +3\r\n", "abc"));
        Add("cl-minus", Outcome.Refused, Post("Content-Length: -3\r\n", "abc"));
        Add("cl-leading-zeros", Outcome.Forwarded, Post("Content-Length: 003\r\n", "abc"));
        Add("cl-ows", Outcome.Forwarded, Post("Content-Length: \t3 \r\n", "abc"));
        Add("cl-zero", Outcome.Forwarded, Post("Content-Length: 0\r\n", ""));
        Add("cl-list-equal", Outcome.Refused, Post("Content-Length: 3, 3\r\n", "abc"));
        Add("cl-two-equal", Outcome.Refused, Post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"));
        Add("cl-two-different", Outcome.Refused, Post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"));
        Add("cl-hex", Outcome.Refused, Post("Content-Length: 0x3\r\n", "abc"));
        Add("cl-exponent", Outcome.Refused, Post("Content-Length: 3e0\r\n", "abc"));
        Add("cl-decimal", Outcome.Refused, Post("Content-Length: 3.0\r\n", "abc"));
        Add("cl-empty", Outcome.Refused, Post("Content-Length:\r\n", ""));
        Add("cl-space-inside", Outcome.Refused, Post("Content-Length: 1 2\r\n", "abcdefghijkl"));
        Add("cl-overflow", Outcome.Refused, Post("Content-Length: 99999999999999999999\r\n", ""));
        Add("cl-over-body-limit", Outcome.Refused, Post("Content-Length: 2000000\r\n", ""));
        Add("cl-get-with-body", Outcome.Forwarded, "GET /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Length: 3\r\n\r\nabc");
        Add("cl-head-with-body", Outcome.Forwarded, "HEAD /svc/m/x HTTP/1.1\r\n" + HostGw + "Content-Length: 3\r\n\r\nabc");
        Add("cl-obs-fold", Outcome.Refused, Post("Content-Length:\r\n 3\r\n", "abc"));
        Add("cl-ctl", Outcome.Refused, Post("Content-Length: 3\u0001\r\n", "abc"));

        // 8. Transfer-Encoding (RFC 9112 §6.1, §6.3, §7.1).
        const string Chunked = "3\r\nabc\r\n0\r\n\r\n";
        Add("te-chunked", Outcome.Forwarded, Post("Transfer-Encoding: chunked\r\n", Chunked));
        Add("te-chunked-case", Outcome.Forwarded, Post("Transfer-Encoding: Chunked\r\n", Chunked));
        Add("te-chunked-ows", Outcome.Forwarded, Post("Transfer-Encoding:  chunked \r\n", Chunked));
        Add("te-chunked-extension", Outcome.Forwarded, Post("Transfer-Encoding: chunked\r\n", "3;name=value\r\nabc\r\n0\r\n\r\n"));
        Add("te-chunked-trailer", Outcome.Forwarded, Post("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"));
        Add("te-chunked-upper-hex", Outcome.Forwarded, Post("Transfer-Encoding: chunked\r\n", "A\r\n0123456789\r\n0\r\n\r\n"));
        Add("te-chunked-leading-zeros", Outcome.Forwarded, Post("Transfer-Encoding: chunked\r\n", "0003\r\nabc\r\n0\r\n\r\n"));
        Add("te-chunked-empty", Outcome.Forwarded, Post("Transfer-Encoding: chunked\r\n", "0\r\n\r\n"));
        Add("te-and-cl", Outcome.Agree, Post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", Chunked));
        Add("te-gzip-not-final-chunked", Outcome.Refused, Post("Transfer-Encoding: gzip\r\n", "abc"));
        Add("te-chunked-then-gzip", Outcome.Refused, Post("Transfer-Encoding: chunked, gzip\r\n", Chunked));
        Add("te-unknown", Outcome.Refused, Post("Transfer-Encoding: xchunked\r\n", Chunked));
        Add("te-identity", Outcome.Refused, Post("Transfer-Encoding: identity\r\n", "abc"));
        Add("te-chunked-twice", Outcome.Agree, Post("Transfer-Encoding: chunked, chunked\r\n", Chunked));
        Add("te-two-lines", Outcome.Agree, Post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", Chunked));
        Add("te-obs-fold", Outcome.Refused, Post("Transfer-Encoding:\r\n chunked\r\n", Chunked));
        Add("te-ctl", Outcome.Refused, Post("Transfer-Encoding: chunked\u000b\r\n", Chunked));
        Add("te-http10", Outcome.Agree, "POST /svc/m/x HTTP/1.0\r\n" + HostGw + "Transfer-Encoding: chunked\r\n\r\n" + Chunked);
        Add("te-bad-chunk-size", Outcome.Refused, Post("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"));
        Add("te-chunk-size-overflow", Outcome.Refused, Post("Transfer-Encoding: chunked\r\n", "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"));
        Add("te-chunk-missing-crlf", Outcome.Refused, Post("Transfer-Encoding: chunked\r\n", "3\r\nabcX\r\n0\r\n\r\n"));
        Add("te-chunk-bare-lf", Outcome.Agree, Post("Transfer-Encoding: chunked\r\n", "3\nabc\n0\n\n"));
        Add("te-header-te-trailers", Outcome.Forwarded, WithFields("TE: trailers\r\n"));
        Add("te-header-te-gzip", Outcome.Forwarded, WithFields("TE: gzip\r\n"), "te");

        // 9. Connection and hop-by-hop fields (RFC 9110 §7.6.1): a proxy removes what Connection names.
        Add("conn-names-field", Outcome.Forwarded, WithFields("Connection: X-Foo\r\nX-Foo: 1\r\n"), "x-foo");
        Add("conn-keep-alive-names-field", Outcome.Forwarded, WithFields("Connection: keep-alive, X-Foo\r\nX-Foo: 1\r\n"), "x-foo");
        Add("conn-close-names-field", Outcome.Forwarded, WithFields("Connection: close, X-Foo\r\nX-Foo: 1\r\n"), "x-foo");
        Add("conn-field-then-keep-alive", Outcome.Forwarded, WithFields("Connection: X-Foo, keep-alive\r\nX-Foo: 1\r\n"), "x-foo");
        Add("conn-two-lines", Outcome.Forwarded, WithFields("Connection: keep-alive\r\nConnection: X-Foo\r\nX-Foo: 1\r\n"), "x-foo");
        Add("conn-two-lines-reversed", Outcome.Forwarded, WithFields("Connection: X-Foo\r\nConnection: keep-alive\r\nX-Foo: 1\r\n"), "x-foo");
        Add("conn-case-and-ows", Outcome.Forwarded, WithFields("Connection:  KEEP-ALIVE ,x-foo ,, \r\nX-Foo: 1\r\nX-Kept: 2\r\n"), "x-foo");
        Add("conn-names-content-type", Outcome.Forwarded, Post("Connection: keep-alive, Content-Type\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n", "abc"), "content-type");
        Add("conn-names-forwarding-field", Outcome.Forwarded, WithFields("Connection: keep-alive, X-Forwarded-Proto\r\n"));
        Add("conn-upgrade-names-field", Outcome.Forwarded, WithFields("Connection: Upgrade, X-Foo\r\nUpgrade: websocket\r\nX-Foo: 1\r\n"), "x-foo", "upgrade");
        Add("conn-close", Outcome.Forwarded, WithFields("Connection: close\r\n"));
        Add("conn-ctl", Outcome.Refused, WithFields("Connection: keep-alive\u0001\r\n"));
        Add("conn-ctl-after-token", Outcome.Refused, WithFields("Connection: keep-alive, X\u0001\r\n"));
        Add("conn-non-ascii-after-token", Outcome.Refused, WithFields("Connection: close, X\u00c3\u00a9\r\n"));
        Add("hop-by-hop-fields", Outcome.Forwarded,
            WithFields("Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nUpgrade: websocket\r\nTrailer: X-T\r\n"),
            "keep-alive", "proxy-connection", "proxy-authorization", "upgrade", "trailer");
        Add("upgrade-h2c", Outcome.Agree, WithFields("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"));

        // 10. Fields the gateway replaces or checks.
        Add("expect-100-continue", Outcome.Forwarded, Post("Expect: 100-continue\r\nContent-Length: 3\r\n", "abc"), "expect");
        Add("expect-unknown", Outcome.Agree, Post("Expect: teapot\r\nContent-Length: 3\r\n", "abc"));
        Add("credentials-dropped", Outcome.Forwarded, WithFields("Authorization: Bearer a\r\nX-API-Key: b\r\n"), "authorization", "x-api-key");
        Add("credentials-repeated", Outcome.Forwarded, WithFields("Authorization: Bearer a\r\nAuthorization: Bearer b\r\n"), "authorization");
        Add("forwarded-fields-replaced", Outcome.Forwarded, WithFields("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"), "forwarded");
        Add("forwarded-for-repeated", Outcome.Forwarded, WithFields("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n"));
        Add("request-id-client", Outcome.Forwarded, WithFields("X-Request-ID: client-id-1\r\n"));
        Add("request-id-malformed", Outcome.Forwarded, WithFields("X-Request-ID: has space\r\n"));
        Add("request-id-repeated", Outcome.Forwarded, WithFields("X-Request-ID: a1\r\nX-Request-ID: b2\r\n"));
        Add("origin-cors", Outcome.Forwarded, WithFields("Origin: http://app.example\r\n"));
        Add("cors-preflight", Outcome.Agree, "OPTIONS /svc/m/x HTTP/1.1\r\n" + HostGw + "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
        Add("cookie-lines", Outcome.Forwarded, WithFields("Cookie: a=1\r\nCookie: b=2\r\n"));
        Add("content-type-without-body", Outcome.Forwarded, WithFields("Content-Type: text/plain\r\nContent-Encoding: gzip\r\n"), "content-type", "content-encoding");
        Add("common-sdk-fields", Outcome.Forwarded,
            "POST /svc/m/v1/chat/completions HTTP/1.1\r\n" + HostGw + "User-Agent: OpenAI/Python 1.40.0\r\nAccept: application/json\r\nAccept-Encoding: gzip, deflate\r\n"
            + "Content-Type: application/json\r\nX-Stainless-Lang: python\r\nX-Stainless-Retry-Count: 0\r\nContent-Length: 17\r\n\r\n{\"model\":\"gemma\"}");
        return cases;
    }
}
