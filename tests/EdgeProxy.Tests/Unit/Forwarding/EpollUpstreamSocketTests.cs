using System.Net;
using System.Net.Sockets;
using EdgeProxy.Forwarding;
using EdgeProxy.Transport;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>
/// The check that decides whether a pooled upstream connection may carry another client's request
/// (<see cref="UpstreamSocket.LooksAlive"/>), on real loopback sockets and a real epoll loop.
/// </summary>
public sealed class EpollUpstreamSocketTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly EpollLoops _loops = new(1);
    private readonly TcpListener _backend = new(IPAddress.Loopback, 0);

    public EpollUpstreamSocketTests() => _backend.Start();

    public void Dispose()
    {
        _backend.Stop();
        _loops.Dispose();
    }

    private async Task<(EpollUpstreamSocket Socket, Socket Backend)> ConnectAsync()
    {
        var accept = _backend.AcceptSocketAsync();
        var socket = await EpollUpstreamSocket.ConnectAsync(_loops, new DnsEndPoint("127.0.0.1", ((IPEndPoint)_backend.LocalEndpoint).Port), Patience, CancellationToken.None);
        return (socket, await accept.WaitAsync(Patience));
    }

    /// <summary>
    /// Bytes the backend sent after a response (a surplus, a late extra response) are in the kernel
    /// before the loop thread has seen their edge when that thread is busy: the check must ask the
    /// kernel, or the next client would read that surplus as its own response.
    /// </summary>
    [Fact]
    public async Task Bytes_the_loop_has_not_seen_yet_make_a_pooled_connection_unusable()
    {
        var (pooled, pooledBackend) = await ConnectAsync();
        var (other, otherBackend) = await ConnectAsync();
        using var release = new ManualResetEventSlim();
        using var loopBusy = new ManualResetEventSlim();
        try
        {
            Assert.True(pooled.LooksAlive());   // nothing to read: its readiness now says "drained"

            // Hold the loop thread: a continuation that runs on it, inline, when `other` turns readable
            // (registered off xunit's synchronization context, which would take it elsewhere).
            var holding = await Task.Factory.StartNew(() => other.ReceiveAsync(new byte[1], CancellationToken.None).AsTask().ContinueWith(_ =>
            {
                Assert.True(_loops.Pick() is { IsCurrentThread: true });
                loopBusy.Set();
                release.Wait(Patience);
            }, TaskContinuationOptions.ExecuteSynchronously), CancellationToken.None, TaskCreationOptions.None, TaskScheduler.Default);
            otherBackend.Send("x"u8);
            Assert.True(loopBusy.Wait(Patience), "the loop thread never ran the holding continuation");

            pooledBackend.Send("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nid=POISON"u8);
            await Task.Delay(50);   // loopback delivers within the send; this only adds margin

            Assert.False(pooled.LooksAlive(), "a connection with unread bytes from the backend looked reusable");
            release.Set();
            await holding.WaitAsync(Patience);
        }
        finally
        {
            release.Set();
            pooled.Dispose();
            other.Dispose();
            pooledBackend.Dispose();
            otherBackend.Dispose();
        }
    }
}
