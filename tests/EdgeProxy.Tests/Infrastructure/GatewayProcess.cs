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
        _port = port;
        Output = output;
        ConfigPath = configPath;
        Client = TestHttp.Create();
    }

    public string Directory { get; }

    private int _port;

    /// <summary>
    /// The main port. With PORT=0 (the harness's default) the gateway picks a free one and logs it;
    /// it is read from the first "Listening on" line (no port is reserved and then raced for).
    /// </summary>
    public int Port
    {
        get
        {
            if (_port == 0)
            {
                _port = ReadBoundPortAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
            }
            return _port;
        }
    }

    private async Task<int> ReadBoundPortAsync(TimeSpan timeout)
    {
        var line = await Output.WaitForLineAsync(l => l.Contains("Listening on http", StringComparison.Ordinal) || _process.HasExited, timeout).ConfigureAwait(false);
        var at = line.IndexOf("Listening on http", StringComparison.Ordinal);
        if (at < 0)
        {
            throw new InvalidOperationException($"gateway exited with {_process.ExitCode} before it listened:\n{Output.Text}");
        }
        var address = line[(at + "Listening on ".Length)..].Trim();
        return new Uri(address).Port;
    }

    public string BaseUrl => $"http://127.0.0.1:{Port}";

    public string ConfigPath { get; }

    public ProcessOutput Output { get; }

    /// <summary>A plain client (source 127.0.0.1) for the gateway.</summary>
    public HttpClient Client { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public int ProcessId => _process.Id;

    /// <summary>The gateway process's peak resident set size so far (VmHWM from /proc/PID/status), in bytes.</summary>
    public long PeakRssBytes => ProcStatusKb("VmHWM") * 1024;

    /// <summary>The gateway process's current resident set size (VmRSS), in bytes.</summary>
    public long RssBytes => ProcStatusKb("VmRSS") * 1024;

    private long ProcStatusKb(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                // "VmHWM:	   81234 kB"
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]);
            }
        }
        throw new InvalidOperationException($"{field} not in /proc/{_process.Id}/status");
    }

    /// <summary>
    /// Writes <paramref name="backendsJson"/> and optional <paramref name="dotEnv"/> into a fresh temp
    /// directory, starts the gateway there with <paramref name="environment"/> (PORT and
    /// BACKENDS_CONFIG_PATH are set unless given) and waits until `GET /health` answers 200.
    /// </summary>
    public static Task<GatewayProcess> StartAsync(
        string backendsJson,
        IDictionary<string, string>? environment = null,
        string? dotEnv = null,
        bool waitForHealth = true,
        string[]? args = null)
        => StartAsync(new GatewayOptions
        {
            BackendsJson = backendsJson,
            Environment = environment,
            DotEnv = dotEnv,
            WaitForHealth = waitForHealth,
            Args = args,
        });

    /// <summary>Starts the gateway as <paramref name="options"/> describe (see <see cref="GatewayOptions"/>).</summary>
    public static async Task<GatewayProcess> StartAsync(GatewayOptions options)
    {
        var directory = Path.Combine(Path.GetTempPath(), "edgeproxy-test-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var configPath = Path.Combine(directory, options.ConfigFile);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(configPath)!);
        await File.WriteAllTextAsync(configPath, options.BackendsJson);
        if (options.DotEnv is not null)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, ".env"), options.DotEnv);
        }
        foreach (var (relative, content) in options.ExtraFiles ?? new Dictionary<string, string>())
        {
            var file = Path.Combine(directory, relative);
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            await File.WriteAllTextAsync(file, content);
        }
        var env = new Dictionary<string, string>(options.Environment ?? new Dictionary<string, string>());
        int port;
        if (env.TryGetValue("PORT", out var p))
        {
            port = int.Parse(p);
        }
        else if (options.ExpectedPort is int expected)
        {
            port = expected;
        }
        else if (env.TryGetValue("LOG_LEVEL", out var level) && level.ToUpperInvariant() is not ("DEBUG" or "INFO" or "INFORMATION" or "TRACE"))
        {
            // The bound port is read from an information line, which this level hides.
            port = FreePort.Get();
            env["PORT"] = port.ToString();
        }
        else
        {
            port = 0;
            env["PORT"] = "0";
        }
        if (options.SetConfigPath)
        {
            env.TryAdd("BACKENDS_CONFIG_PATH", configPath);
        }
        env.TryAdd("HOST", "127.0.0.1");
        var executable = options.CopyBinaryToWorkingDirectory ? CopyBinary(directory) : null;
        var (process, output) = Launch(directory, env, options.Args ?? [], executable, options.Launcher);
        var gateway = new GatewayProcess(process, directory, port, output, configPath);
        if (options.WaitForHealth)
        {
            try
            {
                if (port == 0)
                {
                    gateway._port = await gateway.ReadBoundPortAsync(TimeSpan.FromSeconds(30));
                }
                await gateway.WaitHealthyAsync(TimeSpan.FromSeconds(30));
            }
            catch
            {
                await gateway.DisposeAsync();
                throw;
            }
        }
        return gateway;
    }

    /// <summary>Copies the AOT binary (EDGEPROXY_BIN) alone into <paramref name="directory"/>; returns the copy's path.</summary>
    private static string CopyBinary(string directory)
    {
        var (fileName, prefix) = Repo.Gateway;
        if (prefix.Length > 0)
        {
            throw new InvalidOperationException("CopyBinaryToWorkingDirectory needs the self-contained binary (set EDGEPROXY_BIN)");
        }
        var copy = Path.Combine(directory, Path.GetFileName(fileName));
        File.Copy(fileName, copy);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(copy, File.GetUnixFileMode(fileName));
        }
        return copy;
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

    private static (Process, ProcessOutput) Launch(string directory, IDictionary<string, string> env, string[] args, string? executable = null, string[]? launcher = null)
    {
        var (fileName, prefix) = executable is null ? Repo.Gateway : (executable, []);
        if (launcher is { Length: > 0 })
        {
            // The launcher execs the gateway (nohup does), so the process started is the gateway itself.
            prefix = [.. launcher[1..], fileName, .. prefix];
            fileName = launcher[0];
        }
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
            if (key is "PORT" or "HOST" or "LOG_LEVEL" or "TRANSPORT" or "IO_THREADS" or "HTTP1_FAST_PATH" || key.StartsWith("BACKEND", StringComparison.Ordinal) || key.StartsWith("HEALTH_", StringComparison.Ordinal)
                || key.EndsWith("_TIMEOUT", StringComparison.Ordinal) || key.StartsWith("MAX_", StringComparison.Ordinal) || key.StartsWith("METRICS_", StringComparison.Ordinal))
            {
                info.Environment.Remove(key);
            }
        }
        // test.sh runs the behaviour classes (Matrix.Rerun) again on the other paths and transports;
        // a test's own environment (a GatewayVariant) still wins.
        if (Environment.GetEnvironmentVariable("EDGEPROXY_TEST_TRANSPORT") is { Length: > 0 } transport)
        {
            info.Environment["TRANSPORT"] = transport;
        }
        if (Environment.GetEnvironmentVariable("EDGEPROXY_TEST_FAST_PATH") is { Length: > 0 } fastPath)
        {
            info.Environment["HTTP1_FAST_PATH"] = fastPath;
        }
        foreach (var (k, v) in env)
        {
            info.Environment[k] = v;
        }
        var process = StartRetryingBusyExecutable(info);
        var output = new ProcessOutput();
        output.Attach(process);
        return (process, output);
    }

    /// <summary>
    /// Linux refuses to exec a file that some process still has open for writing (ETXTBSY, "Text file
    /// busy"). Right after the binary is copied, a child forked concurrently by another test can hold
    /// the copy's write descriptor for the instant between its fork and its exec; retry briefly.
    /// </summary>
    private static Process StartRetryingBusyExecutable(ProcessStartInfo info)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return Process.Start(info)!;
            }
            catch (System.ComponentModel.Win32Exception ex) when (ex.NativeErrorCode == 26 && attempt < 20)
            {
                Thread.Sleep(50);
            }
        }
    }

    public async Task WaitHealthyAsync(TimeSpan timeout)
    {
        using var probe = TestHttp.Create(timeout: TimeSpan.FromSeconds(2));
        await WaitHealthyAsync(timeout, probe, BaseUrl + "/health");
    }

    /// <summary>Waits until <paramref name="url"/> answers 2xx through <paramref name="probe"/> (e.g. https with a test CA).</summary>
    public async Task WaitHealthyAsync(TimeSpan timeout, HttpClient probe, string url)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"gateway exited with {_process.ExitCode}:\n{Output.Text}");
            }
            try
            {
                using var response = await probe.GetAsync(url);
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

    /// <summary>Sends SIGTERM (graceful shutdown: stop accepting, drain, exit).</summary>
    public void SendSigterm() => Process.Start("kill", ["-TERM", _process.Id.ToString()])!.WaitForExit(5000);

    /// <summary>Waits (bounded) for the process to exit; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"gateway did not exit within {timeout.TotalSeconds:0.#} s:\n{Output.Text}");
        }
        return _process.ExitCode;
    }

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

/// <summary>How <see cref="GatewayProcess.StartAsync(GatewayOptions)"/> sets up and starts the gateway.</summary>
internal sealed record GatewayOptions
{
    /// <summary>The backends.json content written into the working directory.</summary>
    public required string BackendsJson { get; init; }

    /// <summary>Process environment for the gateway (the developer's own gateway variables are removed).</summary>
    public IDictionary<string, string>? Environment { get; init; }

    /// <summary>Content of `.env` in the working directory (none when null).</summary>
    public string? DotEnv { get; init; }

    public bool WaitForHealth { get; init; } = true;

    public string[]? Args { get; init; }

    /// <summary>Where backends.json is written, relative to the working directory (e.g. `config/backends.json`).</summary>
    public string ConfigFile { get; init; } = "backends.json";

    /// <summary>More files written into the working directory before start (relative path -> content).</summary>
    public IReadOnlyDictionary<string, string>? ExtraFiles { get; init; }

    /// <summary>Point BACKENDS_CONFIG_PATH at the written file; false leaves it unset so the gateway's own default applies.</summary>
    public bool SetConfigPath { get; init; } = true;

    /// <summary>
    /// The port the gateway will listen on without the harness setting PORT (e.g. one `.env` sets).
    /// Null: PORT from <see cref="Environment"/>, else a free port the harness sets.
    /// </summary>
    public int? ExpectedPort { get; init; }

    /// <summary>Run a copy of the self-contained binary placed alone in the working directory (EDGEPROXY_BIN only).</summary>
    public bool CopyBinaryToWorkingDirectory { get; init; }

    /// <summary>A command that execs the gateway, with its arguments (e.g. <c>["/usr/bin/nohup"]</c>); null starts it directly.</summary>
    public string[]? Launcher { get; init; }
}

/// <summary>Builds backends.json documents for tests.</summary>
internal static class BackendsJson
{
    /// <summary>One service, one model, the given backends (id -> url, weight 1 unless given).</summary>
    public static string For(string service, string model, params (string Id, string Url, int Weight)[] backends)
        => For(service, model, backends.Select(b => new JsonObject { ["id"] = b.Id, ["name"] = "Backend " + b.Id, ["url"] = b.Url, ["weight"] = b.Weight }).ToArray());

    /// <summary>One backend object; <paramref name="apiKey"/> and <paramref name="authMode"/> only when given.</summary>
    public static JsonObject Backend(string id, string url, string? apiKey = null, string? authMode = null, int weight = 1)
    {
        var backend = new JsonObject { ["id"] = id, ["name"] = "Backend " + id, ["url"] = url, ["weight"] = weight };
        if (apiKey is not null)
        {
            backend["api_key"] = apiKey;
        }
        if (authMode is not null)
        {
            backend["auth_mode"] = authMode;
        }
        return backend;
    }

    /// <summary>
    /// The same config with every model pinned by client address (<c>"affinity": "client_ip"</c>), for
    /// tests of relaying a body from its first byte: a prefix model (the default) reads a body's
    /// opening before it picks, and its requests with a body take the general path.
    /// </summary>
    public static string ClientIpAffinity(string json)
    {
        var root = JsonNode.Parse(json)!;
        foreach (var (_, service) in root["services"]!.AsObject())
        {
            foreach (var (_, model) in service!["models"]!.AsObject())
            {
                model!["affinity"] = "client_ip";
            }
        }
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>One service with several models, each with its backends.</summary>
    public static string Models(string service, params (string Model, JsonObject[] Backends)[] models)
    {
        var modelsNode = new JsonObject();
        foreach (var (model, backends) in models)
        {
            modelsNode[model] = new JsonObject { ["backends"] = new JsonArray(backends.Select(b => (JsonNode)b.DeepClone()).ToArray()) };
        }
        var root = new JsonObject { ["services"] = new JsonObject { [service] = new JsonObject { ["models"] = modelsNode } } };
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

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
