using System.Net;
using System.Net.Sockets;
using System.Text;
using EdgeProxy.Forwarding;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>
/// The lean upstream client against raw-socket backends whose every byte the test scripts:
/// framing, keep-alive reuse, stale-connection retry, streaming without buffering, aborts, errors.
/// </summary>
public sealed class LeanHttpHandlerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Content_length_responses_reuse_one_connection()
    {
        await using var server = new RawServer(async (conn, _) =>
        {
            while (await conn.ReadHeadAsync() is { } head)
            {
                await conn.SendAsync("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Path: " + head.Split(' ')[1] + "\r\n\r\nhello");
            }
        });
        using var invoker = Invoker();
        for (var i = 0; i < 3; i++)
        {
            using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/a?b=" + i), CancellationToken.None);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("/a?b=" + i, response.Headers.GetValues("X-Path").Single());
            Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
            Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Request_head_carries_host_headers_and_a_counted_body()
    {
        string? seen = null;
        await using var server = new RawServer(async (conn, _) =>
        {
            var head = await conn.ReadHeadAsync();
            var body = await conn.ReadExactAsync(4);
            seen = head + "|" + body;
            await conn.SendAsync("HTTP/1.1 204 No Content\r\n\r\n");
        });
        using var invoker = Invoker();
        var request = new HttpRequestMessage(HttpMethod.Post, server.Url + "/v1/x") { Content = new StringContent("ping") };
        request.Headers.TryAddWithoutValidation("X-Multi", ["a", "b"]);
        using var response = await invoker.SendAsync(request, CancellationToken.None);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.StartsWith("POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:" + server.Port + "\r\n", seen);
        Assert.Contains("X-Multi: a, b\r\n", seen);
        Assert.Contains("Content-Length: 4\r\n", seen);
        Assert.EndsWith("|ping", seen);
    }

    [Fact]
    public async Task Body_of_unknown_length_is_sent_chunked()
    {
        string? seen = null;
        await using var server = new RawServer(async (conn, _) =>
        {
            var head = await conn.ReadHeadAsync();
            seen = head + "|" + await conn.ReadUntilAsync("0\r\n\r\n");
            await conn.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        });
        using var invoker = Invoker();
        var request = new HttpRequestMessage(HttpMethod.Post, server.Url + "/") { Content = new StreamingRequestContent(new MemoryStream("abc"u8.ToArray()), null) };
        using var response = await invoker.SendAsync(request, CancellationToken.None);
        Assert.Contains("Transfer-Encoding: chunked\r\n", seen);
        Assert.EndsWith("|3\r\nabc\r\n0\r\n\r\n", seen);
    }

    [Fact]
    public async Task Chunked_response_is_streamed_chunk_by_chunk_then_the_connection_is_reused()
    {
        var next = new SemaphoreSlim(0);
        await using var server = new RawServer(async (conn, _) =>
        {
            while (await conn.ReadHeadAsync() is not null)
            {
                await conn.SendAsync("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
                await conn.SendAsync("7\r\ndata: 1\r\n");
                // The client must see event 1 before event 2 exists: a buffering client deadlocks here.
                Assert.True(await next.WaitAsync(Timeout));
                await conn.SendAsync("7;ext=1\r\ndata: 2\r\n0\r\nTrailer-X: y\r\n\r\n");
            }
        });
        using var invoker = Invoker();
        for (var round = 0; round < 2; round++)
        {
            using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), CancellationToken.None);
            Assert.True(response.Headers.TransferEncodingChunked);
            var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64];
            Assert.Equal(0, await stream.ReadAsync(Memory<byte>.Empty));
            Assert.Equal("data: 1", Encoding.ASCII.GetString(buffer, 0, await stream.ReadAsync(buffer)));
            next.Release();
            Assert.Equal("data: 2", Encoding.ASCII.GetString(buffer, 0, await stream.ReadAsync(buffer)));
            Assert.Equal(0, await stream.ReadAsync(buffer));
        }
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Head_response_has_no_body_and_keeps_the_connection()
    {
        await using var server = new RawServer(async (conn, _) =>
        {
            while (await conn.ReadHeadAsync() is { } head)
            {
                await conn.SendAsync(head.StartsWith("HEAD", StringComparison.Ordinal)
                    ? "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                    : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        using var invoker = Invoker();
        using (var head = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Head, server.Url + "/"), CancellationToken.None))
        {
            Assert.Equal(100, head.Content.Headers.ContentLength);
            Assert.Equal("", await head.Content.ReadAsStringAsync());
        }
        using var get = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), CancellationToken.None);
        Assert.Equal("ok", await get.Content.ReadAsStringAsync());
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Interim_100_response_is_skipped_and_until_close_body_is_read_to_the_end()
    {
        await using var server = new RawServer(async (conn, _) =>
        {
            await conn.ReadHeadAsync();
            await conn.SendAsync("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
            conn.Close();
        });
        using var invoker = Invoker();
        using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), CancellationToken.None);
        Assert.Equal("all of it", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_pooled_connection_the_backend_closed_is_retried_on_a_new_one()
    {
        await using var server = new RawServer(async (conn, _) =>
        {
            // One response per connection, without announcing the close (as an idle-timeout close looks).
            await conn.ReadHeadAsync();
            await conn.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            conn.Close();
        });
        using var invoker = Invoker();
        for (var i = 0; i < 3; i++)
        {
            using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), CancellationToken.None);
            Assert.Equal("ok", await response.Content.ReadAsStringAsync());
            await Task.Delay(50);
        }
        Assert.Equal(3, server.Connections);
    }

    [Fact]
    public async Task Connect_refused_is_a_connection_error()
    {
        var port = FreePort.Get();
        using var invoker = Invoker();
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/"), CancellationToken.None));
        Assert.Equal(HttpRequestError.ConnectionError, ex.HttpRequestError);
    }

    [Theory]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n")]
    [InlineData("HTTP/2 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\n folded: value\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nBad : space\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")]
    public async Task Malformed_response_heads_are_invalid_responses(string answer)
    {
        await using var server = new RawServer(async (conn, _) =>
        {
            await conn.ReadHeadAsync();
            await conn.SendAsync(answer);
        });
        using var invoker = Invoker();
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), CancellationToken.None));
        Assert.Equal(HttpRequestError.InvalidResponse, ex.HttpRequestError);
    }

    [Fact]
    public async Task Disposing_a_response_mid_body_closes_the_upstream_connection()
    {
        var closed = new TaskCompletionSource();
        await using var server = new RawServer(async (conn, _) =>
        {
            await conn.ReadHeadAsync();
            await conn.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
            if (await conn.ReadHeadAsync() is null)
            {
                closed.TrySetResult();
            }
        });
        using var invoker = Invoker();
        var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), CancellationToken.None);
        var stream = await response.Content.ReadAsStreamAsync();
        Assert.True(await stream.ReadAsync(new byte[16]) > 0);
        response.Dispose();
        await closed.Task.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Cancelling_while_waiting_for_the_head_throws_operation_cancelled()
    {
        await using var server = new RawServer(async (conn, _) =>
        {
            await conn.ReadHeadAsync();
            await Task.Delay(System.Threading.Timeout.Infinite, conn.Aborted);
        });
        using var invoker = Invoker();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.Url + "/"), cts.Token));
    }

    [Fact]
    public async Task Https_goes_to_the_fallback_handler()
    {
        var fallback = new RecordingHandler();
        using var invoker = new HttpMessageInvoker(new LeanHttpHandler(new HttpMessageInvoker(fallback), 10, 2, TimeSpan.FromSeconds(2)));
        using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, "https://backend.invalid/"), CancellationToken.None);
        Assert.Equal(1, fallback.Calls);
    }

    private static HttpMessageInvoker Invoker()
        => new(new LeanHttpHandler(new HttpMessageInvoker(new RecordingHandler()), maxConnections: 10, maxIdleConnections: 2, connectTimeout: TimeSpan.FromSeconds(2)));

    private sealed class RecordingHandler : HttpMessageHandler
    {
        public int Calls;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Accepted));
        }
    }

    /// <summary>A loopback TCP server running a script per accepted connection.</summary>
    private sealed class RawServer : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accept;
        private int _connections;

        public RawServer(Func<RawConnection, CancellationToken, Task> script)
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(64);
            Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
            _accept = Task.Run(async () =>
            {
                var running = new List<Task>();
                try
                {
                    while (true)
                    {
                        var socket = await _listener.AcceptAsync(_stop.Token);
                        Interlocked.Increment(ref _connections);
                        var conn = new RawConnection(socket, _stop.Token);
                        running.Add(Task.Run(async () =>
                        {
                            try
                            {
                                await script(conn, _stop.Token);
                            }
                            catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException)
                            {
                            }
                            finally
                            {
                                conn.Close();
                            }
                        }));
                    }
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                }
                await Task.WhenAll(running);
            });
        }

        public int Port { get; }

        public string Url => $"http://127.0.0.1:{Port}";

        public int Connections => Volatile.Read(ref _connections);

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Dispose();
            await _accept.WaitAsync(Timeout);
        }
    }

    private sealed class RawConnection(Socket socket, CancellationToken aborted)
    {
        private readonly StringBuilder _pending = new();

        public CancellationToken Aborted => aborted;

        public Task SendAsync(string text) => socket.SendAsync(Encoding.Latin1.GetBytes(text), SocketFlags.None, aborted).AsTask();

        /// <summary>The next request head (each line with its CRLF, without the blank line), or null when the client closed.</summary>
        public async Task<string?> ReadHeadAsync()
        {
            var text = await ReadUntilAsync("\r\n\r\n");
            return text?[..^2];
        }

        public async Task<string?> ReadExactAsync(int count)
        {
            while (_pending.Length < count)
            {
                if (!await FillAsync())
                {
                    return null;
                }
            }
            var text = _pending.ToString(0, count);
            _pending.Remove(0, count);
            return text;
        }

        public async Task<string?> ReadUntilAsync(string marker)
        {
            while (true)
            {
                var index = _pending.ToString().IndexOf(marker, StringComparison.Ordinal);
                if (index >= 0)
                {
                    var text = _pending.ToString(0, index + marker.Length);
                    _pending.Remove(0, index + marker.Length);
                    return text;
                }
                if (!await FillAsync())
                {
                    return null;
                }
            }
        }

        private async Task<bool> FillAsync()
        {
            var buffer = new byte[4096];
            int read;
            try
            {
                read = await socket.ReceiveAsync(buffer, SocketFlags.None, aborted);
            }
            catch (SocketException)
            {
                return false;
            }
            if (read == 0)
            {
                return false;
            }
            _pending.Append(Encoding.Latin1.GetString(buffer, 0, read));
            return true;
        }

        public void Close() => socket.Dispose();
    }
}
