using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// The real gateway as a separate process (the AOT binary when EDGEPROXY_BIN is set, else the JIT
/// build), in its own temp working directory with its own backends.json and optional `.env`.
/// </summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;

    private GatewayProcess(Process process, string directory, int port, ProcessOutput output, string configPath)
    {
        _process = process;
        Directory = directory;
        Port = port;
        Output = output;
        ConfigPath = configPath;
        Client = TestHttp.Create();
    }

    public string Directory { get; }

    public int Port { get; }

    public string BaseUrl => $"http://127.0.0.1:{Port}";

    public string ConfigPath { get; }

    public ProcessOutput Output { get; }

    /// <summary>A plain client (source 127.0.0.1) for the gateway.</summary>
    public HttpClient Client { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public int ProcessId => _process.Id;

    /// <summary>
    /// Writes <paramref name="backendsJson"/> and optional <paramref name="dotEnv"/> into a fresh temp
    /// directory, starts the gateway there with <paramref name="environment"/> (PORT and
    /// BACKENDS_CONFIG_PATH are set unless given) and waits until `GET /health` answers 200.
    /// </summary>
    public static async Task<GatewayProcess> StartAsync(
        string backendsJson,
        IDictionary<string, string>? environment = null,
        string? dotEnv = null,
        bool waitForHealth = true,
        string[]? args = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "edgeproxy-test-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var configPath = Path.Combine(directory, "backends.json");
        await File.WriteAllTextAsync(configPath, backendsJson);
        if (dotEnv is not null)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, ".env"), dotEnv);
        }
        var env = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        var port = env.TryGetValue("PORT", out var p) ? int.Parse(p) : FreePort.Get();
        env.TryAdd("PORT", port.ToString());
        env.TryAdd("BACKENDS_CONFIG_PATH", configPath);
        env.TryAdd("HOST", "127.0.0.1");
        var (process, output) = Launch(directory, env, args ?? []);
        var gateway = new GatewayProcess(process, directory, port, output, configPath);
        if (waitForHealth)
        {
            await gateway.WaitHealthyAsync(TimeSpan.FromSeconds(30));
        }
        return gateway;
    }

    /// <summary>Runs the gateway expecting it to exit (bad config); returns exit code and all output.</summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(
        string? backendsJson, IDictionary<string, string>? environment = null, string? dotEnv = null, string[]? args = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "edgeproxy-test-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var env = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        if (backendsJson is not null)
        {
            var configPath = Path.Combine(directory, "backends.json");
            await File.WriteAllTextAsync(configPath, backendsJson);
            env.TryAdd("BACKENDS_CONFIG_PATH", configPath);
        }
        if (dotEnv is not null)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, ".env"), dotEnv);
        }
        env.TryAdd("PORT", FreePort.Get().ToString());
        env.TryAdd("HOST", "127.0.0.1");
        var (process, output) = Launch(directory, env, args ?? []);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(true);
            throw new TimeoutException("gateway did not exit within 30 s:\n" + output.Text);
        }
        process.WaitForExit(); // drain async output
        var code = process.ExitCode;
        process.Dispose();
        try { System.IO.Directory.Delete(directory, true); } catch (IOException) { }
        return (code, output.Text);
    }

    private static (Process, ProcessOutput) Launch(string directory, IDictionary<string, string> env, string[] args)
    {
        var (fileName, prefix) = Repo.Gateway;
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in prefix.Concat(args))
        {
            info.ArgumentList.Add(a);
        }
        // A clean environment for the gateway's own variables: nothing from the developer's shell leaks in.
        foreach (var key in info.Environment.Keys.ToArray())
        {
            if (key is "PORT" or "HOST" or "LOG_LEVEL" || key.StartsWith("BACKEND", StringComparison.Ordinal) || key.StartsWith("HEALTH_", StringComparison.Ordinal)
                || key.EndsWith("_TIMEOUT", StringComparison.Ordinal) || key.StartsWith("MAX_", StringComparison.Ordinal) || key.StartsWith("METRICS_", StringComparison.Ordinal))
            {
                info.Environment.Remove(key);
            }
        }
        foreach (var (k, v) in env)
        {
            info.Environment[k] = v;
        }
        var process = Process.Start(info)!;
        var output = new ProcessOutput();
        output.Attach(process);
        return (process, output);
    }

    public async Task WaitHealthyAsync(TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        using var probe = TestHttp.Create(timeout: TimeSpan.FromSeconds(2));
        while (watch.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"gateway exited with {_process.ExitCode}:\n{Output.Text}");
            }
            try
            {
                using var response = await probe.GetAsync(BaseUrl + "/health");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(25);
        }
        throw new TimeoutException("gateway did not become healthy:\n" + Output.Text);
    }

    /// <summary>Overwrites backends.json (the gateway watches it) atomically via rename.</summary>
    public async Task RewriteConfigAsync(string json)
    {
        var temp = ConfigPath + ".tmp";
        await File.WriteAllTextAsync(temp, json);
        File.Move(temp, ConfigPath, overwrite: true);
    }

    /// <summary>Sends SIGHUP (config reload).</summary>
    public void SendSighup() => Process.Start("kill", ["-HUP", _process.Id.ToString()])!.WaitForExit(5000);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        Client.Dispose();
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Builds backends.json documents for tests.</summary>
internal static class BackendsJson
{
    /// <summary>One service, one model, the given backends (id -> url, weight 1 unless given).</summary>
    public static string For(string service, string model, params (string Id, string Url, int Weight)[] backends)
        => For(service, model, backends.Select(b => new JsonObject { ["id"] = b.Id, ["name"] = "Backend " + b.Id, ["url"] = b.Url, ["weight"] = b.Weight }).ToArray());

    public static string For(string service, string model, JsonObject[] backends, JsonObject? modelExtras = null)
    {
        var modelNode = new JsonObject { ["backends"] = new JsonArray(backends.Select(b => (JsonNode)b.DeepClone()).ToArray()) };
        if (modelExtras is not null)
        {
            foreach (var (k, v) in modelExtras)
            {
                modelNode[k] = v?.DeepClone();
            }
        }
        var root = new JsonObject
        {
            ["services"] = new JsonObject { [service] = new JsonObject { ["models"] = new JsonObject { [model] = modelNode } } },
        };
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }
}
