using System.Net.Sockets;
using System.Runtime.CompilerServices;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Sends one client request to a backend of its model and relays the answer, with one exchange
/// core for both request paths (<see cref="ServeAsync"/>): Kestrel's <c>HttpContext</c> and
/// SocketsHttpHandler (<c>HttpForwarder.General.cs</c>), or the raw HTTP/1.1 front and client
/// (<c>HttpForwarder.Http1.cs</c>). Fails over to another backend only while the request provably
/// was not delivered (connect refused/reset/timed out and no body byte read); once the response has
/// started it never retries, and a failure after that is made visible to the client (error frame,
/// abortive end) instead of a clean-looking truncation.
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

    /// <summary>RETRY_BUFFER_KB in bytes (for the adapters).</summary>
    private int RetryBufferBytes => settings.RetryBufferBytes;

    /// <summary>The response header that says how many backends a request was sent to, when more than one.</summary>
    internal const string AttemptsHeader = "X-EdgeProxy-Attempts";

    /// <summary>
    /// A client's requests, one exchange after another, the same steps on both paths: (0) take the
    /// request; (1) pick a backend and send, failing over while nothing was delivered; (2) relay
    /// the response (<see cref="RespondAsync"/>), or (3) answer the failure; passive health, metrics
    /// and the request's log line on the way. One async frame serves a whole fast-path connection,
    /// as Kestrel's request loop does, and every wait in it is a pipe's or a socket's own ValueTask,
    /// so a request allocates no state machine: a pooled frame per request or per attempt is
    /// allocated afresh whenever requests in flight outnumber the pool's per-thread slots, or one
    /// resumes on another thread than it began. True when the connection goes to Kestrel (a
    /// request the fast path does not serve, left unread).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ServeAsync<TClient, TUpstream>(TClient client, TUpstream upstream)
        where TClient : struct, IExchangeClient
        where TUpstream : struct, IUpstreamExchange
    {
        while (true)
        {
            // 0. The next request.
            RequestStep step;
            do
            {
                try
                {
                    step = client.TakeRequest(await client.ReadAsync().ConfigureAwait(false));
                }
                catch (OperationCanceledException)
                {
                    return false;   // idle too long, or a head that never completes: close, as Kestrel does
                }
            }
            while (step == RequestStep.NeedBytes);
            if (step != RequestStep.Ready)
            {
                return await StopServingAsync(client, step).ConfigureAwait(false);
            }

            // 1. Attempts until one is answered, or none may be made.
            var route = client.Route;
            var attempt = new Attempt();
            ulong tried = 0;
            AdmissionQueue.Waiter? waiter = null;
            while (!attempt.Sent)
            {
                if (!NextBackend(route, client.AffinityKey, client.OpeningKey, tried, client.RequestId, waiter, ref attempt))
                {
                    if (attempt.Error != ForwarderError.Busy
                        || ((attempt.Error, waiter) = await WaitForSlotAsync(route, waiter, tried, client.Timeouts).ConfigureAwait(false)).Error != ForwarderError.None)
                    {
                        break;
                    }
                    continue;
                }
                StartAttempt(route, attempt, upstream, client.Timeouts);
                try
                {
                    await upstream.SendAsync(client.Timeouts, fresh: false).ConfigureAwait(false);
                    while (!upstream.TakeResponseHead())
                    {
                        int read;
                        try
                        {
                            read = await upstream.ReceiveAsync(client.Timeouts).ConfigureAwait(false);
                        }
                        catch (SocketException) when (upstream.MayBeStale)
                        {
                            read = 0;
                        }
                        if (!upstream.Received(read))
                        {
                            // A reused connection the backend had closed: the same request once more on
                            // a fresh one, as SocketsHttpHandler does (nothing of it was consumed).
                            upstream.Abandon();
                            await upstream.SendAsync(client.Timeouts, fresh: true).ConfigureAwait(false);
                        }
                    }
                    attempt.Sent = !RetryRefused(upstream, route, client.RequestId, ref attempt, ref tried);
                }
                catch (Exception ex)
                {
                    if (!FailAttempt(client, upstream, route, ex, ref attempt, ref tried))
                    {
                        break;
                    }
                }
            }

            // 2. The response, or 3. the failure.
            var keepAlive = attempt.Sent
                ? await RespondAsync(client, upstream, route, attempt).ConfigureAwait(false)
                : await FailBeforeResponseAsync(client, route, attempt).ConfigureAwait(false);
            if (!client.EndRequest(keepAlive))
            {
                return false;
            }
        }
    }

    /// <summary>The client sends no more requests here: refused at shutdown (the error answer), closed, or handed to Kestrel (true).</summary>
    private static async ValueTask<bool> StopServingAsync<TClient>(TClient client, RequestStep step)
        where TClient : struct, IExchangeClient
    {
        if (step == RequestStep.Refuse)
        {
            await client.WriteErrorAsync(ForwarderErrors.StatusCode(ForwarderError.Shutdown), ForwarderError.Shutdown).ConfigureAwait(false);
        }
        return step == RequestStep.HandOver;
    }

    /// <summary>The request for the backend its pick counted it on, the gateway's in-flight count, and the exchange's timer for the wait on the backend.</summary>
    private void StartAttempt<TUpstream>(ModelRoute route, in Attempt attempt, TUpstream upstream, CancellationTokenSource timeouts)
        where TUpstream : struct, IUpstreamExchange
    {
        upstream.Prepare(route.Backends[attempt.Index]);
        metrics.UpstreamStarted();
        ExchangeTimers.AwaitUpstream(timeouts, settings);
    }

    /// <summary>
    /// (2) The response: passive health from its status, then the relay, which completes without
    /// waiting when the whole response is already read (then no state machine is allocated). True
    /// when the client connection may carry another request.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> RespondAsync<TClient, TUpstream>(TClient client, TUpstream upstream, ModelRoute route, Attempt attempt)
        where TClient : struct, IExchangeClient
        where TUpstream : struct, IUpstreamExchange
    {
        var status = upstream.Status;
        ReportResponseStatus(route, route.Backends[attempt.Index], attempt.Admission, status);
        var usage = status is >= 200 and < 300 && upstream.CarriesUsage ? client.Usage() : null;
        var relay = default(RelayResult);
        var outcome = ForwarderError.None;
        var keep = true;
        try
        {
            relay = await upstream.RelayAsync(usage, client.Timeouts, attempt.Count).ConfigureAwait(false);
            if (relay.Outcome != StreamCopyOutcome.Completed)
            {
                outcome = CopyFailure(route, route.Backends[attempt.Index], attempt.Admission, relay.Outcome == StreamCopyOutcome.WriteFailed || client.Gone,
                    client.Timeouts.IsCancellationRequested, relay.FirstChunkAt != 0);
                (status, keep) = await FailRelayAsync(client, upstream.Kind, relay, outcome, status).ConfigureAwait(false);
            }
        }
        finally
        {
            upstream.End();
            usage?.Release();   // on the fast path the counts stay readable until the next request resets the scanner
            EndAttempt(route, route.Backends[attempt.Index].State, error: BlamesBackend(status, outcome));
        }
        var firstByteMs = relay.FirstChunkAt == 0 ? (double?)null : time.GetElapsedTime(client.Started, relay.FirstChunkAt).TotalMilliseconds;
        CompleteResponse(client.Method, route, route.Backends[attempt.Index], status, attempt.Count, outcome, usage, client.RequestId, client.Started, firstByteMs);
        return keep;
    }

    /// <summary>The attempts of one exchange: how many, the backend of the last (its index in the route), why it failed, whether it was answered.</summary>
    private struct Attempt
    {
        public int Count;
        public int Index;
        public Admission Admission;
        public ForwarderError Error;
        public bool Sent;

        /// <summary>A request with a body was already sent again after a backend dropped it (once only: it may be what killed the backend).</summary>
        public bool Resent;
    }

    /// <summary>
    /// (3) A relay that failed: an error status while nothing reached the client, else an error frame
    /// and an abortive end. Returns the status the request ends with and whether the client
    /// connection is still usable.
    /// </summary>
    private async ValueTask<(int Status, bool Keep)> FailRelayAsync<TClient>(TClient client, StreamKind kind, RelayResult relay, ForwarderError outcome, int status)
        where TClient : struct, IExchangeClient
    {
        LogStreamFailed(logger, client.RequestId.ToString(), ForwarderErrors.Code(outcome), relay.Exception?.GetType().Name ?? "-");
        if (outcome != ForwarderError.ClientGone && !relay.Started)
        {
            // Nothing reached the client yet: a proper error status is still possible.
            status = ForwarderErrors.StatusCode(outcome);
            return (status, await client.WriteErrorAsync(status, outcome).ConfigureAwait(false));
        }
        if (outcome != ForwarderError.ClientGone)
        {
            await FailStartedAsync(client, kind, outcome).ConfigureAwait(false);
        }
        return (status, false);
    }

    /// <summary>(3) No backend answered: the error status, unless the client is gone.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FailBeforeResponseAsync<TClient>(TClient client, ModelRoute route, Attempt attempt)
        where TClient : struct, IExchangeClient
    {
        var error = attempt.Error;
        var status = ForwarderErrors.StatusCode(error);
        if (error == ForwarderError.NoHealthyBackend)
        {
            LogNoBackend(logger, client.RequestId.ToString(), route.RouteLabel);
        }
        var written = false;
        if (error != ForwarderError.ClientGone && !client.Gone)
        {
            written = await client.WriteErrorAsync(status, error).ConfigureAwait(false);
            error = written ? error : ForwarderError.ClientGone;
        }
        Complete(client.Method, route, attempt.Count == 0 ? null : route.Backends[attempt.Index].State, status, attempt.Count, error, client.RequestId, client.Started, null);
        return written;
    }

    /// <summary>
    /// The response already reached the client: make the failure unmistakable. SSE gets an
    /// `event: error` frame, NDJSON an `{"error":…}` line, and every body ends abortively — never
    /// with a clean end (a chunked terminator or a complete length).
    /// </summary>
    private async ValueTask FailStartedAsync<TClient>(TClient client, StreamKind kind, ForwarderError error)
        where TClient : struct, IExchangeClient
    {
        var frame = kind switch
        {
            StreamKind.Sse => StreamErrorFrames.Sse(error, client.RequestId.ToString()),
            StreamKind.Ndjson => StreamErrorFrames.Ndjson(error, client.RequestId.ToString()),
            _ => null,
        };
        if (frame is not null)
        {
            await client.WriteFrameAsync(frame).ConfigureAwait(false);
        }
        // An abort resets the connection, and a reset discards bytes still in flight: give the frame a moment.
        await Task.Delay(AbortGrace, time).ConfigureAwait(false);
        client.Abort();
    }

    /// <summary>
    /// The next backend to try (balancing, affinity and panic mode in <see cref="BackendSelector"/>),
    /// skipping the ones in <paramref name="tried"/>, counted in flight on it (within its capacity);
    /// false when none may take the request, and then the attempt's error says why: every backend
    /// that may take it is full (<see cref="ForwarderError.Busy"/>: wait for a slot), none is
    /// healthy, or the last attempt's failure. A request that has not waited yet goes behind those
    /// that wait (<paramref name="waiter"/> null and a line): a freed slot is theirs first.
    /// </summary>
    private bool NextBackend(ModelRoute route, ulong? affinityKey, ulong? opening, ulong tried, RequestId requestId, AdmissionQueue.Waiter? waiter, ref Attempt attempt)
    {
        var now = time.GetTimestamp();
        var allowPanic = !settings.FailFastWhenAllUnhealthy;
        var full = waiter is null && route.Queue.Depth > 0 ? ulong.MaxValue : 0UL;
        for (var races = 0; ; races++)
        {
            var pick = full == ulong.MaxValue ? Pick.None : BackendSelector.Select(route, affinityKey, tried | full, now, allowPanic, opening);
            if (!pick.Found)
            {
                var busy = full == ulong.MaxValue || BackendSelector.IsBusy(route, tried, now, allowPanic);
                var room = !busy && BackendSelector.HasRoom(route, tried, now, allowPanic);
                if (room && races < 4)
                {
                    full = 0;   // the pick saw a backend full that has freed a slot since: pick again
                    continue;
                }
                attempt.Error = busy || room ? ForwarderError.Busy : attempt.Count == 0 ? ForwarderError.NoHealthyBackend : attempt.Error;
                return false;
            }
            var state = route.Backends[pick.Index].State;
            if (!state.TryStart(pick.Home))
            {
                // A racing pick took its last slot: choose again without it.
                if (pick.Admission == Admission.Trial)
                {
                    state.AbandonTrial();
                }
                full |= 1UL << pick.Index;
                continue;
            }
            if (waiter is not null)
            {
                route.Queue.Admit(waiter);
                route.Queue.Signal();   // more slots may be free: the next in line picks too
            }
            attempt.Count++;
            attempt.Index = pick.Index;
            attempt.Admission = pick.Admission;
            if (pick.Panic)
            {
                LogPanic(logger, requestId.ToString(), route.RouteLabel, route.Backends[pick.Index].Id);
            }
            return true;
        }
    }

    /// <summary>
    /// (1b) Every backend that may take the request is full: wait in the model's line for a freed
    /// slot, at most queue_timeout. The wait is nobody's timer (the exchange's timer stops; the
    /// first-byte timer starts with the attempt) and never a backend's failure. Returns None when
    /// the request may pick again, else why not: the line is full or the wait ran out (429 with
    /// Retry-After), the client left, or the gateway shut down.
    /// </summary>
    private async ValueTask<(ForwarderError Error, AdmissionQueue.Waiter? Waiter)> WaitForSlotAsync(
        ModelRoute route, AdmissionQueue.Waiter? waiter, ulong tried, CancellationTokenSource timeouts)
    {
        timeouts.CancelAfter(Timeout.InfiniteTimeSpan);
        var allowPanic = !settings.FailFastWhenAllUnhealthy;
        try
        {
            var (outcome, next) = await route.Queue.WaitAsync(waiter, () => BackendSelector.HasRoom(route, tried, time.GetTimestamp(), allowPanic), timeouts.Token)
                .ConfigureAwait(false);
            if (outcome == QueueOutcome.Turn)
            {
                return (ForwarderError.None, next);
            }
            return (outcome == QueueOutcome.Full ? ForwarderError.QueueFull : ForwarderError.QueueTimeout, next);
        }
        catch (OperationCanceledException)
        {
            return (drain.Deadline.IsCancellationRequested ? ForwarderError.Shutdown : ForwarderError.ClientGone, waiter);
        }
    }

    /// <summary>
    /// (1c) The backend refused the request without doing anything with it — 429, or 503 (overloaded,
    /// starting up) — and nothing has reached the client: when the request can be sent again whole
    /// (no body, or a body kept within RETRY_BUFFER_KB), another backend may take it and MAX_ATTEMPTS allows, skip this backend for the
    /// Retry-After it gave (at most EJECTION_MAX) and try another. A 503 still counts for passive
    /// health. True when the request goes elsewhere.
    /// </summary>
    private bool RetryRefused<TUpstream>(TUpstream upstream, ModelRoute route, RequestId requestId, ref Attempt attempt, ref ulong tried)
        where TUpstream : struct, IUpstreamExchange
    {
        var status = upstream.Status;
        if (status is not (429 or 503) || !upstream.CanResend || attempt.Count >= settings.MaxAttempts)
        {
            return false;
        }
        var now = time.GetTimestamp();
        if (!BackendSelector.AnyOther(route, tried | (1UL << attempt.Index), now))
        {
            return false;   // nobody else may take it: the backend's answer stands
        }
        ref readonly var backend = ref route.Backends[attempt.Index];
        var retryAfter = RetryAfterHeader.Parse(upstream.RetryAfter, time.GetUtcNow());
        if (retryAfter is TimeSpan wait)
        {
            backend.State.HoldOff(wait, now);
        }
        upstream.Abandon();
        ReportResponseStatus(route, backend, attempt.Admission, status);
        EndAttempt(route, backend.State, error: status >= 500);
        CountRetry(route);
        LogRefusedRetry(logger, requestId.ToString(), route.RouteLabel, backend.Id, status, retryAfter?.TotalSeconds ?? 0);
        attempt.Error = ForwarderError.NoHealthyBackend;   // should no other backend take it after all
        tried |= 1UL << attempt.Index;
        return true;
    }

    /// <summary>
    /// An attempt is over (answered, failed or refused): its backend's in-flight count and error
    /// count, a slot for the model's line, the gateway's in-flight count. The pair of
    /// <see cref="NextBackend"/>'s start.
    /// </summary>
    private void EndAttempt(ModelRoute route, BackendState backend, bool error)
    {
        backend.OnRequestEnd(error);
        route.Queue.Signal();
        metrics.UpstreamEnded();
    }

    private void CountRetry(ModelRoute route)
        => metrics.Retries.Add(1, new KeyValuePair<string, object?>("service", route.Service), new KeyValuePair<string, object?>("model", route.Model));

    /// <summary>An attempt failed before its response: why, and whether another backend is tried (its bit set in <paramref name="tried"/>).</summary>
    private bool FailAttempt<TClient, TUpstream>(TClient client, TUpstream upstream, ModelRoute route, Exception ex, ref Attempt attempt, ref ulong tried)
        where TClient : struct, IExchangeClient
        where TUpstream : struct, IUpstreamExchange
    {
        upstream.Abandon();
        var failure = Wrap(ex);
        attempt.Error = Classify(failure, client.Gone, upstream.ClientReadError);
        if (!RetryAfterFailedAttempt(route, ref attempt, failure, upstream, client)
            || (attempt.Error == ForwarderError.FirstByteTimeout && !client.RenewTimeouts()))
        {
            return false;
        }
        tried |= 1UL << attempt.Index;
        return true;
    }

    /// <summary>
    /// Bookkeeping for an attempt that failed before a response: the backend's in-flight count and
    /// passive health, then the retry rule — fail over after a connect failure while no body byte
    /// was sent, or re-send a request the backend dropped unanswered: an idempotent one without a
    /// body, or once an inference call with its kept body (<see cref="InferenceCalls"/>) — with its
    /// log line. True when the caller should try another backend.
    /// </summary>
    private bool RetryAfterFailedAttempt<TClient, TUpstream>(ModelRoute route, ref Attempt attempt, Exception ex, TUpstream upstream, TClient client)
        where TClient : struct, IExchangeClient
        where TUpstream : struct, IUpstreamExchange
    {
        var (hasBody, method, requestId) = (upstream.HasBody, client.Method, client.RequestId);
        ref readonly var backend = ref route.Backends[attempt.Index];
        var error = attempt.Error;
        EndAttempt(route, backend.State, error: ForwarderErrors.BlamesBackend(error));
        ReportPassive(route, backend, attempt.Admission, error);
        var mayRetry = attempt.Count < settings.MaxAttempts;
        var retryable = mayRetry && error is ForwarderError.ConnectFailed or ForwarderError.ConnectTimeout && !upstream.BodyStarted;
        var dropped = mayRetry && !retryable && error == ForwarderError.UpstreamRequestFailed && ConnectionDropped(ex)
            && (!hasBody ? IsIdempotent(method) : !attempt.Resent && upstream.CanResend && client.IsInferenceCall);
        attempt.Resent |= dropped && hasBody;
        // A backend that hangs: a safe read (GET, HEAD, OPTIONS) without a body is asked elsewhere.
        var hung = mayRetry && error == ForwarderError.FirstByteTimeout && !hasBody && IsSafeRead(method)
            && BackendSelector.AnyOther(route, 1UL << attempt.Index, time.GetTimestamp());
        if (hung)
        {
            LogHungRetry(logger, requestId.ToString(), route.RouteLabel, backend.Id, method);
        }
        if (dropped)
        {
            LogDroppedRetry(logger, requestId.ToString(), route.RouteLabel, backend.Id, method, ex.InnerException?.Message ?? ex.Message);
        }
        else if (retryable)
        {
            LogFailover(logger, requestId.ToString(), route.RouteLabel, backend.Id, ForwarderErrors.Code(error), ex.Message);
        }
        if (retryable || dropped || hung)
        {
            CountRetry(route);
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
    private void ReportResponseStatus(ModelRoute route, in BackendEntry backend, Admission admission, int status)
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
    private ForwarderError CopyFailure(ModelRoute route, in BackendEntry backend, Admission admission, bool clientGone, bool timedOut, bool bodyStarted)
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
    private void CompleteResponse(string method, ModelRoute route, in BackendEntry backend, int status, int attempts, ForwarderError outcome, UsageScanner? usage, RequestId requestId, long started, double? firstByteMs)
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

    /// <param name="backend">The backend that answered (or failed last); null when none was tried.</param>
    private void Complete(string method, ModelRoute route, BackendState? backend, int status, int attempts, ForwarderError outcome, RequestId requestId, long started, double? firstByteMs)
    {
        var elapsed = time.GetElapsedTime(started);
        var backendId = backend?.Config.Id ?? "-";
        (backend?.Series ?? route.UnservedSeries).Completed(metrics, status, outcome == ForwarderError.ClientGone, elapsed.TotalSeconds, firstByteMs / 1000,
            backendError: BlamesBackend(status, outcome));
        if (logger.IsEnabled(LogLevel.Information))
        {
            LogRequest(logger, requestId.ToString(), method, route.RouteLabel, backendId, status, elapsed.TotalMilliseconds, attempts, ForwarderErrors.Code(outcome));
        }
    }

    /// <summary>Passive health: a failed live request; logs and publishes an ejection when it caused one.</summary>
    private void ReportFailure(ModelRoute route, in BackendEntry backend, bool trial, bool connectionFailure)
    {
        if (backend.State.ReportFailure(trial, connectionFailure, route.MayEjectAnother) is TimeSpan ejectedFor)
        {
            LogEjected(logger, route.RouteLabel, backend.Id, ejectedFor.TotalSeconds, backend.State.Ejections, trial ? "half-open trial failed" : connectionFailure ? "connection failure" : "consecutive errors");
            metrics.Ejections.Add(1, GatewayMetrics.Tags(route.Service, route.Model, backend.Id));
            healthChanged.Notify();
        }
    }

    private void ReportPassive(ModelRoute route, in BackendEntry backend, Admission admission, ForwarderError error)
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

    /// <summary>RFC 9110 §9.2.1 safe methods that only read: asked again elsewhere after a backend hung (TRACE excluded; it echoes).</summary>
    private static bool IsSafeRead(string method) => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method);

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

    /// <summary>Socket failures of the raw client, as an HttpClient reports them (so Classify and ConnectionDropped read both paths alike).</summary>
    private static Exception Wrap(Exception ex) => ex is System.Net.Sockets.SocketException or IOException
        ? new HttpRequestException(HttpRequestError.Unknown, "Sending the request upstream failed: " + ex.Message, ex)
        : ex;
}

/// <summary>How a response body is framed, which decides how a mid-stream failure is signalled.</summary>
internal enum StreamKind
{
    None,
    Sse,
    Ndjson,
    Chunked,
}
