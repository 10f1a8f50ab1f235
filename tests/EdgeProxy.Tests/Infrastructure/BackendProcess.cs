using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A real test backend process (tests/EdgeProxy.TestBackend) on a loopback port. Killing it is a
/// real outage: connections are refused afterwards.
/// </summary>
internal sealed class BackendProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly HttpClient _control = TestHttp.Create(timeout: TimeSpan.FromSeconds(10));

    private BackendProcess(Process process, string id, string url, ProcessOutput output)
    {
        _process = process;
        Id = id;
        Url = url;
        Output = output;
    }

    public string Id { get; }

    /// <summary>`http://127.0.0.1:PORT`.</summary>
    public string Url { get; }

    public int Port => new Uri(Url).Port;

    public ProcessOutput Output { get; }

    public bool HasExited => _process.HasExited;

    /// <param name="port">0 for any free port; a fixed port to restart a killed backend at the same URL.</param>
    /// <param name="tls">PEM certificate and key files: serve https (Url is then `https://127.0.0.1:PORT`; the control calls need http, so they are unavailable).</param>
    public static async Task<BackendProcess> StartAsync(string id, int port = 0, (string Cert, string Key)? tls = null)
    {
        var dll = Repo.TestBackendDll;
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("Test backend not built (build the solution first)", dll);
        }
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"{(tls is null ? "http" : "https")}://127.0.0.1:{port}");
        info.ArgumentList.Add("--id");
        info.ArgumentList.Add(id);
        if (tls is { } files)
        {
            info.ArgumentList.Add("--tls-cert");
            info.ArgumentList.Add(files.Cert);
            info.ArgumentList.Add("--tls-key");
            info.ArgumentList.Add(files.Key);
        }
        info.Environment["DOTNET_gcServer"] = "0";
        info.Environment["DOTNET_TieredPGO"] = "0";
        var process = Process.Start(info)!;
        var output = new ProcessOutput();
        output.Attach(process);
        string line;
        try
        {
            line = await output.WaitForLineAsync(l => l.StartsWith("LISTENING ", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        }
        catch
        {
            try { process.Kill(true); } catch (InvalidOperationException) { }
            throw;
        }
        return new BackendProcess(process, id, line["LISTENING ".Length..].Trim(), output);
    }

    /// <summary>Kills the process and waits until it is gone (its port then refuses connections).</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    public async Task<JsonElement> StatsAsync()
    {
        using var doc = JsonDocument.Parse(await _control.GetStringAsync(Url + "/control/stats"));
        return doc.RootElement.Clone();
    }

    public async Task SetHealthAsync(int status)
        => (await _control.PostAsync($"{Url}/control/health?status={status}", null)).EnsureSuccessStatusCode();

    public async Task ResetStatsAsync()
        => (await _control.PostAsync($"{Url}/control/reset", null)).EnsureSuccessStatusCode();

    public async Task AckAsync(string gate, int n)
        => (await _control.PostAsync($"{Url}/control/ack?gate={Uri.EscapeDataString(gate)}&n={n}", null)).EnsureSuccessStatusCode();

    public async ValueTask DisposeAsync()
    {
        Kill();
        _process.Dispose();
        _control.Dispose();
        await Task.CompletedTask;
    }
}
