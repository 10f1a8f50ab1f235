using System.Diagnostics.Tracing;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Hosting;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Unit.Hosting;

/// <summary>
/// The start-up path's Native AOT aids stay true to the code: every generic type the host's
/// dependency injection closes while the gateway starts and answers its first /health is listed in
/// Hosting/StartupGenerics.rd.xml (else the AOT binary builds it at run time, on the start-up path),
/// and the constant /health body is the JSON the contract describes.
/// </summary>
public sealed partial class StartupGenericsTests
{
    [Fact]
    public async Task Every_generic_type_the_container_closes_at_start_up_is_compiled_in()
    {
        var listed = ListedTypes();
        using var listener = new CallSiteListener();

        var directory = Directory.CreateTempSubdirectory("edgeproxy-startup-").FullName;
        try
        {
            var configPath = Path.Combine(directory, "backends.json");
            File.WriteAllText(configPath, """{"services":{"svc":{"models":{"m":{"backends":[{"id":"a","name":"a","url":"http://127.0.0.1:9"}]}}}}}""");
            var port = FreePort.Get();
            // The gateway's own defaults (transport, fast path, logging); only the address and files are set.
            var settings = SettingsLoader.Load(
                new Dictionary<string, string> { ["HOST"] = "127.0.0.1", ["PORT"] = port.ToString(), ["HEALTH_CHECK_INTERVAL"] = "300" },
                directory);
            var warnings = new List<string>();
            var config = BackendsConfigLoader.LoadFile(configPath, warnings);
            await using (var app = GatewayApp.Build(settings, config, configPath, TimeProvider.System, warnings))
            {
                await app.StartAsync();
                using var client = TestHttp.Create();
                var health = await client.GetAsync($"http://127.0.0.1:{port}/health");
                Assert.Equal(200, (int)health.StatusCode);
                await app.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        var closed = listener.ClosedGenericImplementations();
        // The listener must have seen the container at work, or this test would pass on nothing.
        Assert.Contains(closed, name => name.StartsWith("Microsoft.Extensions.Logging.Logger`1[", StringComparison.Ordinal));
        var missing = closed.Where(name => !listed.Contains(name)).Order(StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0,
            "closed at start-up but not in src/EdgeProxy/Hosting/StartupGenerics.rd.xml (add under the open type's assembly):\n"
            + string.Join("\n", missing.Select(RdXmlLine)));
    }

    [Fact]
    public void The_health_body_is_the_contract_document()
    {
        using var document = JsonDocument.Parse(RequestDispatcher.HealthBody);
        var root = document.RootElement;
        Assert.Equal(["status", "service", "version"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("ok", root.GetProperty("status").GetString());
        Assert.Equal("edgeproxy", root.GetProperty("service").GetString());
        Assert.Equal(GatewayVersion.Value, root.GetProperty("version").GetString());
    }

    /// <summary>The rd.xml's types as Type.ToString() spells them: Open`1[[Arg, Assembly]] becomes Open`1[Arg].</summary>
    private static HashSet<string> ListedTypes()
    {
        var path = Path.Combine(Repo.Root, "src", "EdgeProxy", "Hosting", "StartupGenerics.rd.xml");
        XNamespace ns = "http://schemas.microsoft.com/netfx/2013/01/metadata";
        return XDocument.Load(path).Descendants(ns + "Type")
            .Select(type => AssemblyQualifiedArgument().Replace((string)type.Attribute("Name")!, "$1[$2]"))
            .ToHashSet(StringComparer.Ordinal);
    }

    [GeneratedRegex(@"^([^\[]+)\[\[([^,\]]+),[^\]]+\]\]$")]
    private static partial Regex AssemblyQualifiedArgument();

    private static string RdXmlLine(string name)
    {
        var open = name[..name.IndexOf('[')];
        var argument = name[(name.IndexOf('[') + 1)..^1];
        var assembly = FindType(open)?.Assembly.GetName().Name ?? "?";
        var argumentAssembly = FindType(argument)?.Assembly.GetName().Name ?? "?";
        return $"  [{assembly}] <Type Name=\"{open}[[{argument},{argumentAssembly}]]\" Dynamic=\"Required All\" />";
    }

    private static Type? FindType(string name)
        => AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetType(name)).FirstOrDefault(t => t is not null);

    /// <summary>
    /// The container's own event source reports each call site it builds as JSON (chunked when long);
    /// every "implementationType" that is a closed generic was made from an open registration.
    /// </summary>
    private sealed partial class CallSiteListener : EventListener
    {
        private readonly Lock _gate = new();
        private readonly StringBuilder _json = new();

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Extensions-DependencyInjection")
            {
                EnableEvents(source, EventLevel.Verbose, EventKeywords.All);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventName != "CallSiteBuilt" || e.Payload is not { Count: >= 2 } payload)
            {
                return;
            }
            lock (_gate)
            {
                // Chunks of one call site arrive in order; concatenated they are the whole JSON.
                _json.Append(payload[1] as string).Append('\n');
            }
        }

        public HashSet<string> ClosedGenericImplementations()
        {
            lock (_gate)
            {
                return ImplementationType().Matches(_json.ToString().Replace("\n", "", StringComparison.Ordinal))
                    .Select(m => m.Groups[1].Value)
                    .Where(name => name.Contains('`', StringComparison.Ordinal) && !name.EndsWith("[]", StringComparison.Ordinal))
                    .ToHashSet(StringComparer.Ordinal);
            }
        }

        [GeneratedRegex("\"implementationType\":\\s*\"([^\"]+)\"")]
        private static partial Regex ImplementationType();
    }
}
