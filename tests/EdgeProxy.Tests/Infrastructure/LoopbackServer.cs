using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A TCP server on a free loopback port for the scripted backends: it accepts until disposed and
/// hands each connection to <see cref="ServeAsync"/> (which owns it). <see cref="Stopping"/> ends
/// everything when the test is done.
/// </summary>
internal abstract class LoopbackServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();

    protected LoopbackServer()
    {
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    protected CancellationToken Stopping => _stop.Token;

    /// <summary>Serves one accepted connection; exceptions end only that connection.</summary>
    protected abstract Task ServeAsync(TcpClient client);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;   // stopping
            }
            _ = ServeAsync(client);
        }
    }

    public virtual void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
