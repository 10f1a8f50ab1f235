namespace EdgeProxy.Tests.Infrastructure;

/// <summary>Paths inside the repository, found from the test assembly's location.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    /// <summary>Build configuration the tests were built with (the test backend was built the same way).</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";

    public static string TestBackendDll => Path.Combine(Root, "tests", "EdgeProxy.TestBackend", "bin", Configuration, "net10.0", "EdgeProxy.TestBackend.dll");

    /// <summary>
    /// The gateway under test: EDGEPROXY_BIN (the AOT binary; test.sh sets it to dist/edgeproxy) or
    /// else the JIT build of src/EdgeProxy that was built together with these tests.
    /// </summary>
    public static (string FileName, string[] PrefixArgs) Gateway
    {
        get
        {
            var bin = Environment.GetEnvironmentVariable("EDGEPROXY_BIN");
            if (!string.IsNullOrEmpty(bin))
            {
                return (Path.GetFullPath(bin, Root), []);
            }
            return ("dotnet", [Path.Combine(AppContext.BaseDirectory, "edgeproxy.dll")]);
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EdgeProxy.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("EdgeProxy.sln not found above " + AppContext.BaseDirectory);
    }
}
