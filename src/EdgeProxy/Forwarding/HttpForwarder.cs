using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Sends one client request to a backend of its model and relays the answer. Fails over to another
/// backend only while the request provably was not delivered (connect refused/reset/timed out and
/// no body byte read); once the response has started it never retries, and a failure after that is
/// made visible to the client (error frame, abortive end) instead of a clean-looking truncation.
/// </summary>
internal sealed partial class HttpForwarder(
    HttpMessageInvoker invoker,
    GatewaySettings settings,
    TimeProvider time,
    GatewayMetrics metrics,
    HealthChangeSignal healthChanged,
    ShutdownDrain drain,
    ILogger<HttpForwarder> logger)
{
    /// <summary>MAX_CONNECTIONS per backend, shared by both request paths.</summary>
    private readonly ConnectionBudgets _budgets = new(settings.MaxConnections);

    private static readonly TimeSpan AbortGrace = TimeSpan.FromMilliseconds(100);

    private static readonly UriCreationOptions RawUri = new() { DangerousDisablePathAndQueryCanonicalization = true };

    public async Task ForwardAsync(HttpContext context, ModelRoute route, string remainder, string requestId)
    {
        var started = time.GetTimestamp();
        var clientIp = ClientAddress.Resolve(context, settings, out var peerTrusted);
        var affinityKey = AffinityKey(route, context, clientIp);
        // The request's timers, the client leaving, and the end of a shutdown's drain all cancel the exchange.
        using var timeouts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.Deadline);
        var content = RequestHasBody(context)
            ? new StreamingRequestContent(context.Request.Body, context.Request.ContentLength, timeouts, settings)
            : null;

        // 1. Pick a backend and send; fail over while nothing has been delivered.
        ulong tried = 0;
        var attempts = 0;
        var error = ForwarderError.None;
        HttpResponseMessage? upstream = null;
        SemaphoreSlim? budget = null;   // the MAX_CONNECTIONS slot held for the exchange in progress
        BackendEntry backend = default;
        var admission = Admission.Refused;
        while (true)
        {
            if (!NextBackend(route, affinityKey, tried, requestId, ref attempts, ref error, out var pick, out backend))
            {
                break;
            }
            admission = pick.Admission;

            var request = CreateRequest(context, backend, remainder, requestId, clientIp, peerTrusted, content);
            backend.State.OnRequestStart();
            metrics.UpstreamStarted();
            ExchangeTimers.AwaitUpstream(timeouts, settings);
            try
            {
                var slots = _budgets.For(request.RequestUri!.IdnHost, request.RequestUri.Port);
                await ConnectionBudgets.TakeAsync(slots, timeouts.Token).ConfigureAwait(false);
                budget = slots;
                upstream = await invoker.SendAsync(request, timeouts.Token).ConfigureAwait(false);
                break;
            }
            catch (Exception ex)
            {
                budget?.Release();
                budget = null;
                error = Classify(ex, context, content);
                if (RetryAfterFailedAttempt(route, backend, admission, error, ex, bodyStarted: content is { Started: true }, hasBody: content is not null, context.Request.Method, requestId))
                {
                    tried |= 1UL << pick.Index;
                    continue;
                }
                break;
            }
        }

        if (upstream is not null && InvalidHead(upstream) is { } invalid)
        {
            // A head that is not valid RFC 9110/9112 is unusable: the upstream connection is closed
            // and the client gets a 502 (RFC 9112 §6.3 (5)), as on the fast path, whose parser
            // refuses the same heads. SocketsHttpHandler hands such a response over, and Kestrel
            // would refuse some of its fields with a 500.
            upstream.Dispose();
            upstream = null;
            budget!.Release();
            error = ForwarderError.UpstreamRequestFailed;
            LogUpstreamError(logger, requestId, route.RouteLabel, backend.Id, ForwarderErrors.Code(error), nameof(HttpRequestException), "Invalid upstream response: " + invalid + ".");
            backend.State.OnRequestEnd(error: true);
            metrics.UpstreamEnded();
            ReportFailure(route, backend, admission == Admission.Trial, connectionFailure: false);
        }

        if (upstream is null)
        {
            await FailBeforeResponseAsync(context, route, backend, attempts, error, requestId, started).ConfigureAwait(false);
            return;
        }

        // 2. Relay status and headers.
        var status = (int)upstream.StatusCode;
        var streamKind = StreamKindOf(upstream);
        var response = context.Response;
        double? firstByteMs = null;
        UsageScanner? usage = null;
        var outcome = ForwarderError.None;
        try
        {
            response.StatusCode = status;
            CopyResponseHeaders(upstream, response);
            ReportResponseStatus(route, backend, admission, status);
            if (streamKind != StreamKind.None)
            {
                // Event streams: no buffering anywhere, including an nginx in front of us.
                response.Headers["X-Accel-Buffering"] = "no";
                response.Headers.CacheControl = "no-cache";
                context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
                await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
            }

            // 3. Relay the body chunk by chunk: the first chunk under the first-byte timer, every
            //    later one under the idle timer.
            var body = await upstream.Content.ReadAsStreamAsync(timeouts.Token).ConfigureAwait(false);
            usage = status is >= 200 and < 300 && CarriesUsage(upstream, streamKind) ? new UsageScanner() : null;
            var observer = new ResponseObserver(timeouts, settings, time, usage);
            var copy = await StreamCopier.CopyAsync(body, response.Body, flush: false, observer, timeouts.Token, context.RequestAborted,
                expectedLength: upstream.Headers.TransferEncodingChunked == true ? null : upstream.Content.Headers.ContentLength).ConfigureAwait(false);
            if (observer.FirstChunkAt != 0)
            {
                firstByteMs = time.GetElapsedTime(started, observer.FirstChunkAt).TotalMilliseconds;
            }
            if (copy.Outcome != StreamCopyOutcome.Completed)
            {
                outcome = CopyFailure(route, backend, admission, copy.Outcome == StreamCopyOutcome.WriteFailed || context.RequestAborted.IsCancellationRequested,
                    timeouts.IsCancellationRequested, observer.FirstChunkAt != 0);
                await FailAfterResponseAsync(context, outcome, streamKind, requestId, copy.Exception).ConfigureAwait(false);
                if (!response.HasStarted)
                {
                    status = response.StatusCode;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // Client went away while headers were being sent.
            outcome = ForwarderError.ClientGone;
        }
        finally
        {
            // Disposing a response that was not read to the end aborts the upstream connection:
            // that is how a client disconnect stops the backend generating.
            timeouts.Cancel();
            upstream.Dispose();
            budget!.Release();
            usage?.Release();
            backend.State.OnRequestEnd(error: BlamesBackend(status, outcome));
            metrics.UpstreamEnded();
        }

        CompleteResponse(context.Request.Method, route, backend, status, attempts, outcome, usage, requestId, started, firstByteMs);
    }

    /// <summary>
    /// The next backend to try (balancing, affinity and panic mode in <see cref="BackendSelector"/>),
    /// skipping the ones in <paramref name="tried"/>; false when none may take the request, and then
    /// <paramref name="error"/> says why (no healthy backend, or the last attempt's failure).
    /// </summary>
    private bool NextBackend(ModelRoute route, ulong? affinityKey, ulong tried, RequestId requestId, ref int attempts, ref ForwarderError error, out Pick pick, out BackendEntry backend)
    {
        pick = BackendSelector.Select(route, affinityKey, tried, time.GetTimestamp(), allowPanic: !settings.FailFastWhenAllUnhealthy);
        if (!pick.Found)
        {
            error = attempts == 0 ? ForwarderError.NoHealthyBackend : error;
            backend = default;
            return false;
        }
        attempts++;
        backend = route.Backends[pick.Index];
        if (pick.Panic)
        {
            LogPanic(logger, requestId.ToString(), route.RouteLabel, backend.Id);
        }
        return true;
    }

    /// <summary>
    /// Bookkeeping for an attempt that failed before a response (both paths): the backend's
    /// in-flight count and passive health, then the retry rule — fail over after a connect failure
    /// while no body byte was sent, or re-send an idempotent body-less request the backend dropped
    /// unanswered — with its log line. True when the caller should try another backend.
    /// </summary>
    private bool RetryAfterFailedAttempt(ModelRoute route, BackendEntry backend, Admission admission, ForwarderError error, Exception ex, bool bodyStarted, bool hasBody, string method, RequestId requestId)
    {
        backend.State.OnRequestEnd(error: ForwarderErrors.BlamesBackend(error));
        metrics.UpstreamEnded();
        ReportPassive(route, backend, admission, error);
        var retryable = error is ForwarderError.ConnectFailed or ForwarderError.ConnectTimeout && !bodyStarted;
        var dropped = !retryable && error == ForwarderError.UpstreamRequestFailed && !hasBody && IsIdempotent(method) && ConnectionDropped(ex);
        if (dropped)
        {
            LogDroppedRetry(logger, requestId.ToString(), route.RouteLabel, backend.Id, method, ex.InnerException?.Message ?? ex.Message);
        }
        else if (retryable)
        {
            LogFailover(logger, requestId.ToString(), route.RouteLabel, backend.Id, ForwarderErrors.Code(error), ex.Message);
        }
        if (retryable || dropped)
        {
            metrics.Retries.Add(1, new KeyValuePair<string, object?>("service", route.Service), new KeyValuePair<string, object?>("model", route.Model));
            return true;
        }
        if (error == ForwarderError.ClientGone)
        {
            // Not the backend's failure: say who went away (the log names the client).
            LogClientGoneBeforeResponse(logger, requestId.ToString(), route.RouteLabel, backend.Id);
        }
        else if (ForwarderErrors.IsClientFault(error))
        {
            LogClientBodyFailed(logger, requestId.ToString(), route.RouteLabel, ForwarderErrors.Code(error), backend.Id);
        }
        else if (error == ForwarderError.Shutdown)
        {
            LogShutdownBeforeResponse(logger, requestId.ToString(), route.RouteLabel, backend.Id);
        }
        else
        {
            LogUpstreamError(logger, requestId.ToString(), route.RouteLabel, backend.Id, ForwarderErrors.Code(error), ex.GetType().Name, ex.Message);
        }
        return false;
    }

    /// <summary>Passive health from the response status: a 5xx counts as a failure, anything else as a success (and ends a half-open trial).</summary>
    private void ReportResponseStatus(ModelRoute route, BackendEntry backend, Admission admission, int status)
    {
        if (status >= 500)
        {
            ReportFailure(route, backend, admission == Admission.Trial, connectionFailure: false);
            return;
        }
        if (admission == Admission.Trial)
        {
            LogReadmitted(logger, route.RouteLabel, backend.Id);
            healthChanged.Notify();
        }
        backend.State.ReportSuccess(admission == Admission.Trial);
    }

    /// <summary>
    /// Why a started response's copy failed (both paths); anything but the client leaving or the
    /// end of a shutdown's drain counts against the backend.
    /// </summary>
    private ForwarderError CopyFailure(ModelRoute route, BackendEntry backend, Admission admission, bool clientGone, bool timedOut, bool bodyStarted)
    {
        var outcome = clientGone ? ForwarderError.ClientGone
            : drain.Deadline.IsCancellationRequested ? ForwarderError.Shutdown
            : timedOut ? (bodyStarted ? ForwarderError.StreamIdleTimeout : ForwarderError.FirstByteTimeout)
            : ForwarderError.UpstreamReset;
        if (ForwarderErrors.BlamesBackend(outcome))
        {
            ReportFailure(route, backend, admission == Admission.Trial, connectionFailure: false);
        }
        return outcome;
    }

    /// <summary>After a response: token usage, the abort counter, then <see cref="Complete"/>.</summary>
    private void CompleteResponse(string method, ModelRoute route, BackendEntry backend, int status, int attempts, ForwarderError outcome, UsageScanner? usage, RequestId requestId, long started, double? firstByteMs)
    {
        if (usage is { Found: true })
        {
            backend.State.Series.Tokens(metrics, usage.PromptTokens, usage.CompletionTokens);
        }
        if (outcome != ForwarderError.None)
        {
            metrics.StreamAborts.Add(1, new KeyValuePair<string, object?>("reason", ForwarderErrors.Code(outcome)));
        }
        Complete(method, route, backend.State, status, attempts, outcome, requestId, started, firstByteMs);
    }

    private async Task FailBeforeResponseAsync(HttpContext context, ModelRoute route, BackendEntry backend, int attempts, ForwarderError error, string requestId, long started)
    {
        var status = ForwarderErrors.StatusCode(error);
        if (error == ForwarderError.NoHealthyBackend)
        {
            LogNoBackend(logger, requestId, route.RouteLabel);
        }
        if (error != ForwarderError.ClientGone && !context.RequestAborted.IsCancellationRequested)
        {
            try
            {
                await ErrorResponses.WriteAsync(context, status, ForwarderErrors.Code(error), ForwarderErrors.Message(error)).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                error = ForwarderError.ClientGone;
            }
        }
        Complete(context.Request.Method, route, attempts == 0 ? null : backend.State, status, attempts, error, requestId, started, null);
    }

    /// <summary>
    /// The response already started (or at least its headers are committed to the backend's):
    /// make the failure unmistakable. SSE gets an `event: error` frame, NDJSON an `{"error":…}`
    /// line, and every body ends abortively — never with a clean chunked terminator.
    /// </summary>
    private async Task FailAfterResponseAsync(HttpContext context, ForwarderError error, StreamKind kind, string requestId, Exception? exception)
    {
        var response = context.Response;
        LogStreamFailed(logger, requestId, ForwarderErrors.Code(error), exception?.GetType().Name ?? "-");
        if (error == ForwarderError.ClientGone)
        {
            return;
        }
        if (!response.HasStarted)
        {
            // Nothing reached the client yet: a proper error status is still possible.
            response.Clear();
            response.Headers[RequestIds.HeaderName] = requestId;
            await ErrorResponses.WriteAsync(context, ForwarderErrors.StatusCode(error), ForwarderErrors.Code(error), ForwarderErrors.Message(error)).ConfigureAwait(false);
            return;
        }
        try
        {
            var frame = kind switch
            {
                StreamKind.Sse => StreamErrorFrames.Sse(error, requestId),
                StreamKind.Ndjson => StreamErrorFrames.Ndjson(error, requestId),
                _ => null,
            };
            if (frame is not null)
            {
                await response.Body.WriteAsync(frame, context.RequestAborted).ConfigureAwait(false);
                await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The client is gone too; nothing more to tell it.
        }
        // Kestrel's Abort resets the connection, and a reset discards bytes still in flight: give
        // the error frame a moment to leave before ending the response abortively.
        await Task.Delay(AbortGrace, time).ConfigureAwait(false);
        context.Abort();
    }

    /// <param name="backend">The backend that answered (or failed last); null when none was tried.</param>
    private void Complete(string method, ModelRoute route, BackendState? backend, int status, int attempts, ForwarderError outcome, RequestId requestId, long started, double? firstByteMs)
    {
        var elapsed = time.GetElapsedTime(started);
        var backendId = backend?.Config.Id ?? "-";
        (backend?.Series ?? route.UnservedSeries).Completed(metrics, status, outcome == ForwarderError.ClientGone, elapsed.TotalSeconds, firstByteMs / 1000);
        backend?.Stats.Record(elapsed.TotalMilliseconds, firstByteMs, error: BlamesBackend(status, outcome));
        if (logger.IsEnabled(LogLevel.Information))
        {
            LogRequest(logger, requestId.ToString(), method, route.RouteLabel, backendId, status, elapsed.TotalMilliseconds, attempts, ForwarderErrors.Code(outcome));
        }
    }

    /// <summary>Passive health: a failed live request; logs and publishes an ejection when it caused one.</summary>
    private void ReportFailure(ModelRoute route, BackendEntry backend, bool trial, bool connectionFailure)
    {
        if (backend.State.ReportFailure(trial, connectionFailure, route.MayEjectAnother) is TimeSpan ejectedFor)
        {
            LogEjected(logger, route.RouteLabel, backend.Id, ejectedFor.TotalSeconds, backend.State.Ejections, trial ? "half-open trial failed" : connectionFailure ? "connection failure" : "consecutive errors");
            metrics.Ejections.Add(1, GatewayMetrics.Tags(route.Service, route.Model, backend.Id));
            healthChanged.Notify();
        }
    }

    private void ReportPassive(ModelRoute route, BackendEntry backend, Admission admission, ForwarderError error)
    {
        var trial = admission == Admission.Trial;
        switch (error)
        {
            case ForwarderError.ConnectFailed:
            case ForwarderError.ConnectTimeout:
                ReportFailure(route, backend, trial, connectionFailure: true);
                break;
            case ForwarderError.FirstByteTimeout:
            case ForwarderError.UpstreamRequestFailed:
                ReportFailure(route, backend, trial, connectionFailure: false);
                break;
            default:
                if (trial)
                {
                    backend.State.AbandonTrial();
                }
                break;
        }
    }

    /// <summary>
    /// An exchange's end counts against its backend when the backend answered 5xx or failed it; not
    /// when the 503 is the gateway's own, for its shutdown (<see cref="ForwarderErrors.BlamesBackend"/>).
    /// </summary>
    private static bool BlamesBackend(int status, ForwarderError outcome)
        => ForwarderErrors.BlamesBackend(outcome) || (status >= 500 && outcome != ForwarderError.Shutdown);

    private ForwarderError Classify(Exception ex, HttpContext context, StreamingRequestContent? content)
        => Classify(ex, context.RequestAborted.IsCancellationRequested, content?.ClientReadError);

    /// <summary>Why an attempt failed before a response (both paths). A cancellation is the client's, the shutdown deadline's, or else the first-byte timer's.</summary>
    private ForwarderError Classify(Exception ex, bool clientAborted, Exception? clientReadError)
    {
        if (clientReadError is { } readError)
        {
            return readError is BadHttpRequestException { StatusCode: 413 } ? ForwarderError.RequestBodyTooLarge
                : clientAborted ? ForwarderError.ClientGone
                : readError is OperationCanceledException ? ForwarderError.ClientBodyTimeout
                : ForwarderError.ClientRequestBody;
        }
        if (clientAborted)
        {
            return ForwarderError.ClientGone;
        }
        if (ex is OperationCanceledException)
        {
            return drain.Deadline.IsCancellationRequested ? ForwarderError.Shutdown : ForwarderError.FirstByteTimeout;
        }
        if (ex is HttpRequestException http)
        {
            for (var inner = http.InnerException; inner is not null; inner = inner.InnerException)
            {
                if (inner is UpstreamConnectTimeoutException)
                {
                    return ForwarderError.ConnectTimeout;
                }
            }
            if (http.HttpRequestError == HttpRequestError.ConnectionError)
            {
                return ForwarderError.ConnectFailed;
            }
        }
        return ForwarderError.UpstreamRequestFailed;
    }

    /// <summary>RFC 9110 §9.2.2: methods a proxy may repeat without changing the outcome.</summary>
    private static bool IsIdempotent(string method)
        => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method)
            || HttpMethods.IsTrace(method) || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method);

    /// <summary>
    /// The backend closed or reset the connection before any response byte (a backend killed with
    /// requests queued in its socket answers them with RST). For an idempotent request without a body
    /// nothing is lost by sending it again elsewhere, and nothing has reached the client yet: a backend that dies under load
    /// must fail no client request it never answered.
    /// </summary>
    private static bool ConnectionDropped(Exception ex)
    {
        if (ex is not HttpRequestException http)
        {
            return false;
        }
        if (http.HttpRequestError == HttpRequestError.ResponseEnded)
        {
            return true;
        }
        for (var inner = http.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException)
            {
                return true;
            }
        }
        return false;
    }

    internal static ulong? AffinityKey(ModelRoute route, HttpContext context, IPAddress clientIp)
    {
        switch (route.AffinityConfig.Kind)
        {
            case AffinityKind.None:
                return null;
            case AffinityKind.Header:
                var value = context.Request.Headers[route.AffinityConfig.HeaderName!];
                if (value.Count > 0 && !string.IsNullOrEmpty(value[0]))
                {
                    return StableHash.Hash(value[0].AsSpan());
                }
                // No session header: fall back to the client's address.
                return StableHash.Hash(clientIp);
            default:
                return StableHash.Hash(clientIp);
        }
    }

    private static bool RequestHasBody(HttpContext context)
    {
        var detection = context.Features.Get<IHttpRequestBodyDetectionFeature>();
        return detection?.CanHaveBody ?? (context.Request.ContentLength > 0);
    }

    internal static HttpRequestMessage CreateRequest(
        HttpContext context, BackendEntry backend, string remainder, string requestId, IPAddress clientIp, bool peerTrusted, StreamingRequestContent? content)
    {
        var incoming = context.Request;
        var target = remainder.Length == 0 ? backend.BaseUrl + "/"
            : remainder[0] == '?' ? string.Concat(backend.BaseUrl, "/", remainder)
            : backend.BaseUrl + remainder;
        var request = new HttpRequestMessage(MethodOf(incoming.Method), new Uri(target, in RawUri))
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            Content = content,
        };
        content?.ApplyLength();

        // Request headers minus hop-by-hop (and the ones named in Connection: Kestrel's value, with
        // the lines as received, which Kestrel may have collapsed) and the ones we replace.
        var connectionValue = HeaderRules.ConnectionNamingFields(Join(incoming.Headers.Connection, ConnectionFieldCapture.Raw));
        foreach (var header in incoming.Headers)
        {
            var name = header.Key;
            if (name.Length == 0 || name[0] == ':' || HeaderRules.RequestReplaced.Contains(name))
            {
                continue;
            }
            if (HeaderRules.HopByHop.Contains(name))
            {
                // RFC 9110 §10.1.4: TE is hop-by-hop, but "trailers" tells the backend the client can take them.
                if (name.Equals("TE", StringComparison.OrdinalIgnoreCase) && HasToken(header.Value, "trailers"))
                {
                    request.Headers.TryAddWithoutValidation("TE", "trailers");
                }
                continue;
            }
            if (connectionValue is not null && HeaderRules.NamedByConnection(connectionValue, name))
            {
                continue;
            }
            if (name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase))
            {
                if (content is not null)
                {
                    AddHeader(content.Headers, name, header.Value);
                }
                continue;
            }
            AddHeader(request.Headers, name, header.Value);
        }

        // Forwarding headers: recomputed, trusting the client's values only from a trusted proxy.
        var peerAddress = ClientAddress.Peer(context);
        var peer = peerAddress.ToString();
        var forwardedFor = incoming.Headers["X-Forwarded-For"];
        request.Headers.TryAddWithoutValidation("X-Forwarded-For",
            peerTrusted && forwardedFor.Count > 0 ? forwardedFor.ToString() + ", " + peer : peer);
        var forwardedProto = incoming.Headers["X-Forwarded-Proto"];
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", peerTrusted && forwardedProto.Count > 0 ? forwardedProto.ToString() : incoming.Scheme);
        var forwardedHost = incoming.Headers["X-Forwarded-Host"];
        var host = peerTrusted && forwardedHost.Count > 0 ? forwardedHost.ToString() : incoming.Host.Value;
        if (!string.IsNullOrEmpty(host))
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-Host", host);
        }
        request.Headers.TryAddWithoutValidation("X-Real-IP", clientIp.Equals(peerAddress) ? peer : clientIp.ToString());
        request.Headers.TryAddWithoutValidation(RequestIds.HeaderName, requestId);

        // The backend's own key (contract: backend api_key over global key, in its auth_mode).
        if (backend.AuthHeaderName is not null)
        {
            request.Headers.TryAddWithoutValidation(backend.AuthHeaderName, backend.AuthHeaderValue);
        }
        return request;
    }

    private static void AddHeader(HttpHeaders headers, string name, StringValues values)
    {
        if (values.Count == 1)
        {
            headers.TryAddWithoutValidation(name, values[0]);
        }
        else
        {
            headers.TryAddWithoutValidation(name, values.ToArray());
        }
    }

    private static bool HasToken(StringValues values, string token)
    {
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }
            foreach (var range in value.AsSpan().Split(','))
            {
                var item = value.AsSpan(range).Trim();
                var semicolon = item.IndexOf(';');
                if ((semicolon < 0 ? item : item[..semicolon]).Trim().Equals(token, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>The values of a field as one comma-separated string (RFC 9110 §5.3), plus more; null when there are none.</summary>
    private static string? Join(StringValues values, string? more)
        => values.Count == 0 ? more : more is null ? values.ToString() : values.ToString() + ", " + more;

    /// <summary>
    /// Why a backend's head (as SocketsHttpHandler parsed it) is not valid RFC 9110/9112, by the rules
    /// the fast path parses with (<see cref="HttpSyntax"/>); null when it is. SocketsHttpHandler
    /// already refuses malformed status lines and field names; this adds what it lets through: a
    /// status outside 200–599 (it hands over 099, 600 and a 101 nobody asked for), control bytes in
    /// a reason phrase or value, a Content-Length that is not one 1*DIGIT value, framing on a 204.
    /// </summary>
    private static string? InvalidHead(HttpResponseMessage upstream)
    {
        var status = (int)upstream.StatusCode;
        if (status is < 200 or > 599)
        {
            return "status " + status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (upstream.ReasonPhrase is { Length: > 0 } reason && !HttpSyntax.Holds(reason, HttpSyntax.IsResponseFieldValue))
        {
            return "malformed status line";
        }
        var lengths = 0;
        var framed = false;
        Span<byte> digits = stackalloc byte[32];
        foreach (var fields in (ReadOnlySpan<HttpHeadersNonValidated>)[upstream.Headers.NonValidated, upstream.Content.Headers.NonValidated])
        {
            foreach (var field in fields)
            {
                if (!HttpSyntax.Holds(field.Key, HttpSyntax.IsToken))
                {
                    return "malformed header field";
                }
                var contentLength = field.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase);
                framed |= field.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase);
                foreach (var value in field.Value)
                {
                    if (!HttpSyntax.Holds(value, HttpSyntax.IsResponseFieldValue))
                    {
                        return "malformed header field";
                    }
                    if (contentLength)
                    {
                        using var bytes = new WireBytes(value.AsSpan().Trim([' ', '\t']), digits);
                        if (++lengths > 1 || !bytes.Valid || !HttpSyntax.TryParseContentLength(bytes.Span, out var length))
                        {
                            return "invalid Content-Length";
                        }
                        framed |= length > 0;
                    }
                }
            }
        }
        // RFC 9110 §8.6, RFC 9112 §6.1: a 204 carries no body and no framing for one.
        return status == 204 && framed ? "framing on a 204" : null;
    }

    private static void CopyResponseHeaders(HttpResponseMessage upstream, HttpResponse response)
    {
        string? connectionValue = null;
        if (upstream.Headers.NonValidated.TryGetValues("Connection", out var connection))
        {
            connectionValue = HeaderRules.ConnectionNamingFields(connection.ToString());
        }
        // RFC 9112 §6.3 (3): with Transfer-Encoding the received Content-Length is not the body's
        // length and must not be relayed (Kestrel would abort the response on the mismatch).
        var chunked = upstream.Headers.TransferEncodingChunked == true;
        CopyHeaders(upstream.Headers.NonValidated, response, connectionValue, dropContentLength: false);
        CopyHeaders(upstream.Content.Headers.NonValidated, response, connectionValue, dropContentLength: chunked);
    }

    private static void CopyHeaders(HttpHeadersNonValidated source, HttpResponse response, string? connectionValue, bool dropContentLength)
    {
        foreach (var header in source)
        {
            var name = header.Key;
            if (HeaderRules.HopByHop.Contains(name) || HeaderRules.ResponseReplaced.Contains(name)
                || (connectionValue is not null && HeaderRules.NamedByConnection(connectionValue, name))
                || (dropContentLength && name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            var values = header.Value;
            if (values.Count == 1)
            {
                foreach (var v in values)
                {
                    response.Headers[name] = v;
                }
            }
            else
            {
                var array = new string[values.Count];
                var i = 0;
                foreach (var v in values)
                {
                    array[i++] = v;
                }
                response.Headers[name] = array;
            }
        }
    }

    private static StreamKind StreamKindOf(HttpResponseMessage upstream)
    {
        var mediaType = upstream.Content.Headers.NonValidated.TryGetValues("Content-Type", out var contentType) ? contentType.ToString() : null;
        if (mediaType is not null)
        {
            if (mediaType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase))
            {
                return StreamKind.Sse;
            }
            if (mediaType.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase)
                || mediaType.StartsWith("application/ndjson", StringComparison.OrdinalIgnoreCase)
                || mediaType.StartsWith("application/jsonl", StringComparison.OrdinalIgnoreCase))
            {
                return StreamKind.Ndjson;
            }
        }
        var hasLength = upstream.Content.Headers.NonValidated.Contains("Content-Length");
        return !hasLength && upstream.Headers.TransferEncodingChunked == true ? StreamKind.Chunked : StreamKind.None;
    }

    private static HttpMethod MethodOf(string method) => method switch
    {
        "GET" => HttpMethod.Get,
        "POST" => HttpMethod.Post,
        "PUT" => HttpMethod.Put,
        "DELETE" => HttpMethod.Delete,
        "PATCH" => HttpMethod.Patch,
        "HEAD" => HttpMethod.Head,
        "OPTIONS" => HttpMethod.Options,
        _ => new HttpMethod(method),
    };

    /// <summary>JSON answers and event streams may carry an OpenAI-style `usage` object worth counting.</summary>
    private static bool CarriesUsage(HttpResponseMessage upstream, StreamKind kind)
    {
        if (kind is StreamKind.Sse or StreamKind.Ndjson)
        {
            return true;
        }
        return upstream.Content.Headers.NonValidated.TryGetValues("Content-Type", out var type)
            && type.ToString().Contains("json", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Sees each chunk after it was written: the first chunk ends the first-byte phase, every chunk
    /// re-arms the idle timer, and token usage is read on the way past.
    /// </summary>
    private sealed class ResponseObserver(CancellationTokenSource timeouts, GatewaySettings settings, TimeProvider time, UsageScanner? usage) : ICopyObserver
    {
        public long FirstChunkAt { get; private set; }

        public void OnReading()
        {
        }

        public void OnWriting()
        {
        }

        public void OnChunk(ReadOnlySpan<byte> chunk)
        {
            if (FirstChunkAt == 0)
            {
                FirstChunkAt = time.GetTimestamp();
            }
            ExchangeTimers.AwaitNextChunk(timeouts, settings);
            usage?.Observe(chunk);
        }
    }
}

/// <summary>How a response body is framed, which decides how a mid-stream failure is signalled.</summary>
internal enum StreamKind
{
    None,
    Sse,
    Ndjson,
    Chunked,
}
