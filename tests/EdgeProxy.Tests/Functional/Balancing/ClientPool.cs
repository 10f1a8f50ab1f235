using System.Net;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Many distinct client IPs for affinity and load tests: one HttpClient per 127.0.{subnet}.{n}
/// source address (Linux routes all of 127.0.0.0/8 to loopback).
/// </summary>
internal sealed class ClientPool : IDisposable
{
    private ClientPool(string[] addresses)
    {
        Addresses = addresses;
        Clients = addresses.Select(a => TestHttp.Create(a, TimeSpan.FromSeconds(20))).ToArray();
    }

    public string[] Addresses { get; }

    public HttpClient[] Clients { get; }

    /// <param name="subnet">Third octet, distinct per test so parallel tests never share a client address.</param>
    public static ClientPool Create(int subnet, int count)
        => new(Enumerable.Range(1, count).Select(n => $"127.0.{subnet}.{n}").ToArray());

    /// <summary>GET {gateway}/svc/m/echo from client <paramref name="index"/>: the id of the backend that answered, or the failure.</summary>
    public async Task<(string? BackendId, string? Failure)> EchoAsync(GatewayProcess gateway, int index, string route = "svc/m")
    {
        try
        {
            using var response = await Clients[index].GetAsync($"{gateway.BaseUrl}/{route}/echo");
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return (null, $"{Addresses[index]}: {(int)response.StatusCode} {body}");
            }
            using var json = JsonDocument.Parse(body);
            return (json.RootElement.GetProperty("id").GetString(), null);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return (null, $"{Addresses[index]}: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>Like <see cref="EchoAsync"/> but a failure fails the test.</summary>
    public async Task<string> EchoIdAsync(GatewayProcess gateway, int index, string route = "svc/m")
    {
        var (id, failure) = await EchoAsync(gateway, index, route);
        Assert.True(failure is null, failure);
        return id!;
    }

    public void Dispose()
    {
        foreach (var client in Clients)
        {
            client.Dispose();
        }
    }
}
