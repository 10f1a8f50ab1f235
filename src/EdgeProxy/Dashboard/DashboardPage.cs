using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Dashboard;

/// <summary>
/// The dashboard: one HTML page embedded in the binary (edge boxes are often offline: no CDN).
/// Served with a strong ETag and a strict Content-Security-Policy whose script and style hashes are
/// computed from the page itself at start-up, so no inline code other than the page's own can run.
/// </summary>
internal sealed partial class DashboardPage
{
    private readonly byte[] _html;
    private readonly string _etag;
    private readonly string _csp;

    public DashboardPage()
    {
        using var stream = typeof(DashboardPage).Assembly.GetManifestResourceStream("EdgeProxy.Dashboard.index.html")
            ?? throw new InvalidOperationException("The dashboard resource is missing from the binary.");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        _html = memory.ToArray();
        _etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(_html).AsSpan(0, 16)) + "\"";
        _csp = BuildCsp(Encoding.UTF8.GetString(_html));
    }

    public string ContentSecurityPolicy => _csp;

    public string ETag => _etag;

    public Task ServeAsync(HttpContext context)
    {
        var response = context.Response;
        response.Headers.ETag = _etag;
        response.Headers.CacheControl = "no-cache";
        response.Headers.ContentSecurityPolicy = _csp;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.XFrameOptions = "DENY";
        var ifNoneMatch = context.Request.Headers.IfNoneMatch;
        if (ifNoneMatch.Count > 0 && (ifNoneMatch.ToString().Contains(_etag, StringComparison.Ordinal) || ifNoneMatch.ToString() == "*"))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }
        response.ContentType = "text/html; charset=utf-8";
        response.ContentLength = _html.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(_html).AsTask();
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
