using System.Text;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;

namespace EdgeProxy.Benchmarks;

/// <summary>A route table like a production one: a few services, several models, weighted backends.</summary>
internal static class Fixtures
{
    public static readonly GatewaySettings Settings = SettingsLoader.Load(new Dictionary<string, string>(), Path.GetTempPath());

    public static RouteTable Table()
    {
        var json = new StringBuilder("{\"services\":{");
        for (var s = 0; s < 4; s++)
        {
            json.Append(s == 0 ? "" : ",").Append("\"svc").Append(s).Append("\":{\"models\":{");
            for (var m = 0; m < 8; m++)
            {
                json.Append(m == 0 ? "" : ",").Append("\"model-").Append(m).Append("\":{");
                json.Append(m switch { 1 => "\"affinity\":\"none\",", 2 => "\"affinity\":\"header:X-Session-ID\",", _ => "" });
                json.Append("\"backends\":[");
                for (var b = 0; b < 3; b++)
                {
                    json.Append(b == 0 ? "" : ",").Append("{\"id\":\"b").Append(b).Append("\",\"name\":\"b").Append(b)
                        .Append("\",\"url\":\"http://127.0.0.1:").Append(9100 + b).Append("\",\"weight\":").Append(b + 1).Append('}');
                }
                json.Append("]}");
            }
            json.Append("}}");
        }
        json.Append("}}");
        var config = BackendsConfigLoader.Parse(Encoding.UTF8.GetBytes(json.ToString()), "bench");
        return RouteTable.Build(config, Settings, HealthPolicy.From(Settings), TimeProvider.System);
    }
}
