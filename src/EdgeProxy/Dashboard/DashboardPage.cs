using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Dashboard;

/// <summary>
/// The dashboard: one HTML page embedded in the binary (edge boxes are often offline: no CDN).
/// Served with a strong ETag and a strict Content-Security-Policy whose script and style hashes are
/// computed from the page itself on first use, so no inline code other than the page's own can run.
/// Built lazily, not at start-up: SHA-256 comes from OpenSSL, and loading libssl/libcrypto costs a
/// gateway that nobody looks at ~3 MB of RSS and several ms of start time.
/// </summary>
internal sealed partial class DashboardPage
{
    private Content? _content;

    private sealed record Content(byte[] Html, string ETag, string Csp);

    // Racing first requests may both build it; the results are identical and one wins.
    private Content Load() => _content ??= Build();

    private static Content Build()
    {
        using var stream = typeof(DashboardPage).Assembly.GetManifestResourceStream("EdgeProxy.Dashboard.index.html")
            ?? throw new InvalidOperationException("The dashboard resource is missing from the binary.");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        var html = memory.ToArray();
        var etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(html).AsSpan(0, 16)) + "\"";
        return new Content(html, etag, BuildCsp(Encoding.UTF8.GetString(html)));
    }

    public Task ServeAsync(HttpContext context)
    {
        var (html, etag, csp) = Load();
        var response = context.Response;
        response.Headers.ETag = etag;
        response.Headers.CacheControl = "no-cache";
        response.Headers.ContentSecurityPolicy = csp;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.XFrameOptions = "DENY";
        var ifNoneMatch = context.Request.Headers.IfNoneMatch;
        if (ifNoneMatch.Count > 0 && (ifNoneMatch.ToString().Contains(etag, StringComparison.Ordinal) || ifNoneMatch.ToString() == "*"))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }
        response.ContentType = "text/html; charset=utf-8";
        response.ContentLength = html.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(html).AsTask();
    }

    /// <summary>CSP allowing only the page's own inline script and style, by hash (CSP3 hash-source).</summary>
    internal static string BuildCsp(string html)
    {
        var script = ScriptElement().Match(html);
        var style = StyleElement().Match(html);
        var scriptSource = script.Success ? $"'sha256-{Hash(script.Groups[1].Value)}'" : "'none'";
        var styleSource = style.Success ? $"'sha256-{Hash(style.Groups[1].Value)}'" : "'none'";
        return $"default-src 'none'; script-src {scriptSource}; style-src {styleSource}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    }

    private static string Hash(string content) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(content)));

    [GeneratedRegex("<script>(.*?)</script>", RegexOptions.Singleline)]
    private static partial Regex ScriptElement();

    [GeneratedRegex("<style>(.*?)</style>", RegexOptions.Singleline)]
    private static partial Regex StyleElement();
}
