using System.Diagnostics;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>The system curl (CI installs it), run with an argument list and a deadline.</summary>
internal static class Curl
{
    public static bool Available { get; } = Environment.GetEnvironmentVariable("PATH")?.Split(':')
        .Any(d => File.Exists(Path.Combine(d, "curl"))) == true;

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var info = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("--max-time");
        info.ArgumentList.Add("30");
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        await process.WaitForExitAsync(deadline.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
