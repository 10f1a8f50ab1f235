using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Tls;

/// <summary>
/// TLS termination (TLS_CERT_FILE / TLS_KEY_FILE): TLS 1.2+, ALPN h2 and http/1.1, the chain from
/// the certificate file, reload on file change and on SIGHUP, a bad new pair keeping the old one,
/// and exit 2 naming the file when it is unusable at start. Certificates are made by the test.
/// </summary>
[Trait(Matrix.Trait, Matrix.Variants)]
public sealed class TlsTerminationTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ReloadDeadline = TimeSpan.FromSeconds(15);

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task Alpn_offers_h2_and_http11_and_both_proxy_with_forwarded_proto_https(string variantName)
    {
        var variant = GatewayVariant.Parse(variantName);
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), variant.Apply());

        foreach (var version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            using var client = tls.Pki.CreateClient(version);
            using var response = await client.GetAsync(tls.BaseUrl + "/svc/m/echo/x?q=1");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(version, response.Version);
            using var echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var headers = echo.RootElement.GetProperty("headers");
            Assert.Equal("https", headers.GetProperty("x-forwarded-proto")[0].GetString());
            Assert.Equal("/echo/x?q=1", echo.RootElement.GetProperty("raw_target").GetString());
            Assert.True(response.Headers.Contains("X-Request-ID"));
        }
        if (variant.FastPath)
        {
            // HTTP/1.1 over TLS is relayed by the fast path; the h2 request went to Kestrel's HTTP/2.
            using var metrics = tls.Pki.CreateClient();
            var text = await metrics.GetStringAsync(tls.BaseUrl + "/metrics");
            Assert.Contains("edgeproxy_fast_path_requests_total 1", text);
        }
    }

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]   // CipherSuitesPolicy: the gateway runs on Linux only
    public async Task Tls12_offers_the_same_ecdhe_suites_on_both_engines_and_no_sha1_mac(string variantName)
    {
        // epoll: OpenSSL on the socket; sockets: Kestrel's TLS. Both must offer the runtime's list.
        var variant = GatewayVariant.Parse(variantName);
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)), variant.Apply());
        HttpClient Offering(params TlsCipherSuite[] suites) => tls.Pki.CreateClient(protocols: SslProtocols.Tls12,
            configure: h => h.SslOptions.CipherSuitesPolicy = new CipherSuitesPolicy(suites));

        foreach (var accepted in new[] { TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 })
        {
            using var client = Offering(accepted);
            using var response = await client.GetAsync(tls.BaseUrl + "/health");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        foreach (var refused in new[] { TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 })
        {
            using var client = Offering(refused);
            var failure = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(tls.BaseUrl + "/health"));
            Assert.IsType<AuthenticationException>(failure.InnerException);
        }
    }

    [Fact]
    public async Task Tls12_and_tls13_handshake_and_the_chain_from_the_file_is_sent()
    {
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)));
        foreach (var protocol in new[] { SslProtocols.Tls12, SslProtocols.Tls13 })
        {
            // The client trusts only the root: the handshake validates only with the intermediate the gateway sends.
            using var client = tls.Pki.CreateClient(protocols: protocol);
            using var response = await client.GetAsync(tls.BaseUrl + "/health");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        Assert.Equal(tls.Leaf.SerialNumber, await tls.ServedSerialAsync());
    }

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task Cleartext_on_the_tls_port_is_not_served_and_the_connection_is_closed(string variantName)
    {
        var variant = GatewayVariant.Parse(variantName);
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)), variant.Apply());
        using var plain = TestHttp.Create(timeout: TimeSpan.FromSeconds(10));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync($"http://127.0.0.1:{tls.Gateway.Port}/health"));

        // A failed handshake closes the connection without an answer, and the port goes on serving TLS.
        using var raw = new System.Net.Sockets.TcpClient();
        await raw.ConnectAsync(IPAddress.Loopback, tls.Gateway.Port);
        var stream = raw.GetStream();
        await stream.WriteAsync("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var answer = new byte[256];
        int read;
        try
        {
            read = await stream.ReadAsync(answer, deadline.Token);
        }
        catch (IOException)
        {
            read = 0;   // reset
        }
        Assert.Equal(0, read);
        using var client = tls.Pki.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(tls.BaseUrl + "/health")).StatusCode);
    }

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task Large_bodies_cross_tls_intact_both_ways_with_a_reader_that_pauses(string variantName)
    {
        const long download = 32L << 20;
        const long upload = 8L << 20;
        var variant = GatewayVariant.Parse(variantName);
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), variant.Apply());
        using var client = tls.Pki.CreateClient(HttpVersion.Version11);
        client.Timeout = TimeSpan.FromSeconds(60);

        // The client stops reading after the first bytes, so the gateway's sends fill the socket and wait for room.
        using (var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/download?bytes={download}", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadAsStreamAsync();
            var first = new byte[1];
            Assert.Equal(1, await body.ReadAsync(first));
            await Task.Delay(500);
            var (rest, _) = await Bodies.HashAsync(body);
            Assert.Equal(download, 1 + rest);
        }
        using (var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/download?bytes={download}&chunked=1", HttpCompletionOption.ResponseHeadersRead))
        {
            var (length, sha) = await Bodies.HashAsync(await response.Content.ReadAsStreamAsync());
            Assert.Equal(download, length);
            Assert.Equal(Bodies.DownloadPatternSha256(download), sha);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, $"{tls.BaseUrl}/svc/m/echo/upload") { Content = new PatternContent(upload, announceLength: true) };
        using var echoed = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, echoed.StatusCode);
        var echo = await EchoBody.ReadAsync(echoed);
        Assert.Equal(upload, echo.BodyLength);
        Assert.Equal(Bodies.DownloadPatternSha256(upload), echo.BodySha256);
    }

    [Fact]
    public async Task Tls_port_adds_a_tls_listener_and_port_stays_cleartext()
    {
        var pki = TestCertificates.Create();
        using var leaf = pki.IssueLeaf();
        var tlsPort = FreePort.Get();
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)),
            Environment = new Dictionary<string, string> { ["TLS_CERT_FILE"] = "c.pem", ["TLS_KEY_FILE"] = "k.pem", ["TLS_PORT"] = tlsPort.ToString() },
            ExtraFiles = new Dictionary<string, string> { ["c.pem"] = pki.ChainPem(leaf), ["k.pem"] = TestCertificates.KeyPem(leaf) },
        });
        using var client = pki.CreateClient(HttpVersion.Version20);
        using var response = await client.GetAsync($"https://127.0.0.1:{tlsPort}/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        using var plain = await gateway.Client.GetAsync(gateway.BaseUrl + "/health");
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        pki.Dispose();
    }

    public enum Replacement
    {
        /// <summary>Truncate and write each file (`cp`, some ACME clients).</summary>
        InPlace,

        /// <summary>Write new files and rename them over (lego, `mv`).</summary>
        Rename,

        /// <summary>Re-point symlinks at a new generation of files (certbot's `live/` links).</summary>
        Symlink,
    }

    [Theory]
    [InlineData(Replacement.InPlace)]
    [InlineData(Replacement.Rename)]
    [InlineData(Replacement.Symlink)]
    public async Task Certificate_reloads_when_its_files_are_replaced(Replacement how)
    {
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)));
        Assert.Equal(tls.Leaf.SerialNumber, await tls.ServedSerialAsync());

        // A connection opened before the reload keeps working after it.
        using var early = tls.Pki.CreateClient(HttpVersion.Version20);
        (await early.GetAsync(tls.BaseUrl + "/health")).EnsureSuccessStatusCode();

        using var next = tls.Pki.IssueLeaf();
        switch (how)
        {
            case Replacement.InPlace:
                tls.Pki.WriteInPlace(tls.CertPath, tls.KeyPath, next);
                break;
            case Replacement.Rename:
                tls.Pki.WriteByRename(tls.CertPath, tls.KeyPath, next);
                break;
            default:
                // The gateway was started on plain files; turn them into links to generation 2, as certbot's renewal does (new link renamed over).
                var archive = Path.Combine(tls.Gateway.Directory, "archive");
                Directory.CreateDirectory(archive);
                File.WriteAllText(Path.Combine(archive, "fullchain2.pem"), tls.Pki.ChainPem(next));
                File.WriteAllText(Path.Combine(archive, "privkey2.pem"), TestCertificates.KeyPem(next));
                File.CreateSymbolicLink(tls.KeyPath + ".lnk", Path.Combine(archive, "privkey2.pem"));
                File.CreateSymbolicLink(tls.CertPath + ".lnk", Path.Combine(archive, "fullchain2.pem"));
                File.Move(tls.KeyPath + ".lnk", tls.KeyPath, overwrite: true);
                File.Move(tls.CertPath + ".lnk", tls.CertPath, overwrite: true);
                break;
        }
        var watch = Stopwatch.StartNew();
        await Poll.UntilAsync(async () => await tls.ServedSerialAsync() == next.SerialNumber, ReloadDeadline, "the new certificate to be served");
        output.WriteLine($"{how}: new certificate served {watch.ElapsedMilliseconds} ms after the files changed");
        // The log line is written after the new certificate is in use: wait for it, as for SIGHUP below.
        await tls.Gateway.Output.WaitForLineAsync(l => l.Contains("TLS certificate reloaded (file change)", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        (await early.GetAsync(tls.BaseUrl + "/health")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task Sighup_reloads_the_certificate()
    {
        // WATCH_CONFIG=false: no file watching, so only the signal can be what reloads it.
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)),
            new Dictionary<string, string> { ["WATCH_CONFIG"] = "false" });
        using var next = tls.Pki.IssueLeaf();
        tls.Pki.WriteByRename(tls.CertPath, tls.KeyPath, next);
        Assert.Equal(tls.Leaf.SerialNumber, await tls.ServedSerialAsync());
        tls.Gateway.SendSighup();
        await Poll.UntilAsync(async () => await tls.ServedSerialAsync() == next.SerialNumber, ReloadDeadline, "the new certificate after SIGHUP");
        // The log lines are written after the swap: wait for them rather than read them at once.
        await tls.Gateway.Output.WaitForLineAsync(l => l.Contains("TLS certificate reloaded (SIGHUP)", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        // The same signal still reloads backends.json (one registration serves both).
        await tls.Gateway.Output.WaitForLineAsync(l => l.Contains("Configuration reloaded", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        // Again with the same files: nothing is swapped, and the log says so.
        tls.Gateway.SendSighup();
        await tls.Gateway.Output.WaitForLineAsync(l => l.Contains("TLS certificate unchanged (SIGHUP)", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        Assert.Equal(next.SerialNumber, await tls.ServedSerialAsync());
    }

    public enum BadPair
    {
        KeyOfAnotherCertificate,
        NotPem,
        Expired,
        ClientAuthOnly,
    }

    [Theory]
    [InlineData(BadPair.KeyOfAnotherCertificate, "cannot use this private key")]
    [InlineData(BadPair.NotPem, "no -----BEGIN CERTIFICATE----- block")]
    [InlineData(BadPair.Expired, "expired on")]
    [InlineData(BadPair.ClientAuthOnly, "does not include server authentication")]
    public async Task A_bad_new_certificate_keeps_the_old_one_serving_and_logs_why(BadPair bad, string reason)
    {
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)));
        using var other = tls.Pki.IssueLeaf();
        switch (bad)
        {
            case BadPair.KeyOfAnotherCertificate:
                File.WriteAllText(tls.KeyPath, TestCertificates.KeyPem(other));
                break;
            case BadPair.NotPem:
                File.WriteAllText(tls.CertPath, "this is not a certificate\n");
                break;
            case BadPair.Expired:
                using (var expired = tls.Pki.IssueLeaf(notAfter: DateTimeOffset.UtcNow.AddMinutes(-5)))
                {
                    tls.Pki.WriteByRename(tls.CertPath, tls.KeyPath, expired);
                }
                break;
            default:
                using (var clientOnly = tls.Pki.IssueLeaf(serverAuth: false))
                {
                    tls.Pki.WriteByRename(tls.CertPath, tls.KeyPath, clientOnly);
                }
                break;
        }
        await Poll.UntilAsync(() => tls.Gateway.Output.Lines.Any(l => l.Contains("TLS certificate reload rejected", StringComparison.Ordinal)),
            ReloadDeadline, "the rejected reload to be logged");
        var line = tls.Gateway.Output.Lines.First(l => l.Contains("TLS certificate reload rejected", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.Contains(reason, line);
        Assert.Contains("still serving", line);
        Assert.Equal(tls.Leaf.SerialNumber, await tls.ServedSerialAsync());

        // A good pair afterwards is taken.
        using var good = tls.Pki.IssueLeaf();
        tls.Pki.WriteByRename(tls.CertPath, tls.KeyPath, good);
        await Poll.UntilAsync(async () => await tls.ServedSerialAsync() == good.SerialNumber, ReloadDeadline, "the good certificate after the bad one");
    }

    public enum StartProblem
    {
        MissingCert,
        MissingKey,
        UnreadableKey,
        MismatchedKey,
        OnlyCert,
    }

    [Theory]
    [InlineData(StartProblem.MissingCert, "missing/fullchain.pem: file not found")]
    [InlineData(StartProblem.MissingKey, "nokey.pem: file not found")]
    [InlineData(StartProblem.UnreadableKey, "k.pem: cannot read")]
    [InlineData(StartProblem.MismatchedKey, "k.pem: cannot use this private key")]
    [InlineData(StartProblem.OnlyCert, "TLS_KEY_FILE: is required")]
    public async Task An_unusable_certificate_at_start_exits_2_naming_the_file(StartProblem problem, string expected)
    {
        var pki = TestCertificates.Create();
        using var leaf = pki.IssueLeaf();
        using var other = pki.IssueLeaf();
        var directory = Path.Combine(Path.GetTempPath(), "edgeproxy-tls-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        try
        {
            var cert = Path.Combine(directory, "c.pem");
            var key = Path.Combine(directory, "k.pem");
            File.WriteAllText(cert, pki.ChainPem(leaf));
            File.WriteAllText(key, TestCertificates.KeyPem(problem == StartProblem.MismatchedKey ? other : leaf));
            var env = new Dictionary<string, string> { ["TLS_CERT_FILE"] = cert, ["TLS_KEY_FILE"] = key };
            switch (problem)
            {
                case StartProblem.MissingCert:
                    env["TLS_CERT_FILE"] = Path.Combine(directory, "missing", "fullchain.pem");
                    break;
                case StartProblem.MissingKey:
                    env["TLS_KEY_FILE"] = Path.Combine(directory, "nokey.pem");
                    break;
                case StartProblem.UnreadableKey:
                    if (Environment.UserName == "root")
                    {
                        // Root reads a 0000 file anyway; a directory in its place is unreadable for anyone.
                        File.Delete(key);
                        Directory.CreateDirectory(key);
                    }
                    else if (!OperatingSystem.IsWindows())
                    {
                        File.SetUnixFileMode(key, UnixFileMode.None);
                    }
                    break;
                case StartProblem.OnlyCert:
                    env.Remove("TLS_KEY_FILE");
                    break;
            }
            var (code, text) = await GatewayProcess.RunToExitAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)), env);
            output.WriteLine(text);
            Assert.Equal(2, code);
            Assert.Contains(expected, text);
        }
        finally
        {
            Directory.Delete(directory, true);
            pki.Dispose();
        }
    }

    [Fact]
    public async Task Curl_http2_over_tls_streams_sse_through_the_gateway()
    {
        if (!Curl.Available)
        {
            output.WriteLine("curl not installed; skipped (CI installs it)");
            return;
        }
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)),
            new Dictionary<string, string> { ["BACKEND_API_KEY"] = "gw-key" });
        var (code, stdout, stderr) = await Curl.RunAsync("-sS", "-N", "--http2", "--cacert", tls.RootPemPath,
            "-H", "Authorization: Bearer gw-key", "-w", "\nHTTP_VERSION=%{http_version} STATUS=%{http_code}\n",
            tls.BaseUrl + "/svc/m/sse?events=3&delayMs=20");
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.Contains("HTTP_VERSION=2 STATUS=200", stdout);
        Assert.Contains("\"i\":2", stdout);
        Assert.Contains("data: [DONE]", stdout);

        // And HTTP/1.1 over TLS (the fast path) with curl's own TLS stack.
        (code, stdout, stderr) = await Curl.RunAsync("-sS", "--http1.1", "--cacert", tls.RootPemPath,
            "-H", "Authorization: Bearer gw-key", "-w", "\nHTTP_VERSION=%{http_version} STATUS=%{http_code}\n",
            tls.BaseUrl + "/svc/m/ndjson?lines=3");
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.Contains("HTTP_VERSION=1.1 STATUS=200", stdout);
        Assert.Contains("\"i\":2", stdout);
    }
}
