using System.Net;
using System.Net.Security;
using EdgeProxy.Configuration;

namespace EdgeProxy.Hosting;

/// <summary>
/// `edgeproxy --healthcheck [URL]`: a container health probe that needs no shell, wget or curl (a
/// distroless or scratch image has none). GETs URL, by default this configuration's own `/health`
/// (http or https as TLS_* say, on 127.0.0.1 or HOST), and exits 0 on a 2xx answer within the
/// timeout, else 1 with the reason on stderr. The probe sends no credentials and reads only the
/// status, so it does not verify the server certificate: it asks "is this process serving?", and a
/// certificate for the public name never matches 127.0.0.1.
/// </summary>
internal static class Healthcheck
{
    public const string Argument = "--healthcheck";

    /// <summary>Inside Docker's default HEALTHCHECK timeout (30 s) and well above a healthy answer's few ms.</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 1)
        {
            Console.Error.WriteLine($"edgeproxy: {Argument} takes at most one URL");
            return 1;
        }
        Uri url;
        if (args.Length == 1)
        {
            if (!Uri.TryCreate(args[0], UriKind.Absolute, out url!) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            {
                Console.Error.WriteLine($"edgeproxy: {Argument}: '{args[0]}' is not an http:// or https:// URL");
                return 1;
            }
        }
        else
        {
            try
            {
                url = OwnHealthUrl(SettingsLoader.Load(SettingsLoader.ProcessEnvironment(), Directory.GetCurrentDirectory()));
            }
            catch (ConfigException ex)
            {
                Console.Error.WriteLine("edgeproxy: configuration error in " + ex.Message);
                return 1;
            }
        }

        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            ConnectTimeout = Timeout,
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
        };
        using var client = new HttpClient(handler) { Timeout = Timeout };
        try
        {
            using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            if ((int)response.StatusCode is >= 200 and < 300)
            {
                return 0;
            }
            Console.Error.WriteLine($"edgeproxy: {Argument}: {url} answered {(int)response.StatusCode}");
            return 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            // The innermost exception names the cause (refused, reset, TLS); the outer ones only wrap it.
            var reason = ex is TaskCanceledException ? $"no answer within {Timeout.TotalSeconds:0} s" : $"{ex.GetBaseException().GetType().Name}: {ex.GetBaseException().Message}";
            Console.Error.WriteLine($"edgeproxy: {Argument}: {url}: {reason}");
            return 1;
        }
    }

    /// <summary>`/health` on the main port: https when TLS is on it, on loopback unless HOST names one address.</summary>
    internal static Uri OwnHealthUrl(GatewaySettings settings)
    {
        var scheme = settings.TlsEnabled && settings.TlsPort == 0 ? "https" : "http";
        var host = settings.Host switch
        {
            "0.0.0.0" or "*" or "" => "127.0.0.1",
            "::" => "[::1]",
            var h when IPAddress.TryParse(h, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 => $"[{h}]",
            var h => h,
        };
        return new Uri($"{scheme}://{host}:{settings.Port}/health");
    }
}
