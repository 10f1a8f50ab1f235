namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A fact that compiles a C program: skipped (with the reason shown) only when gcc is not on PATH.
/// CI has it (the Native AOT link needs a C toolchain), so there the fact always runs.
/// </summary>
public sealed class GccFactAttribute : FactAttribute
{
    public GccFactAttribute()
    {
        if (Gcc.Path is null)
        {
            Skip = "needs gcc on PATH (apt-get install gcc)";
        }
    }
}

/// <summary>Where gcc is, if anywhere on PATH.</summary>
internal static class Gcc
{
    public static string? Path { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => System.IO.Path.Combine(dir, "gcc"))
        .FirstOrDefault(File.Exists);
}
