using EdgeProxy.Configuration;
using EdgeProxy.Observability;

namespace EdgeProxy.Health;

/// <summary>
/// Everything that changes about one backend at run time: active health, passive ejection, slow
/// start and live counters. One instance per (service, model, id, url); it survives config reloads
/// that leave the backend unchanged. Written with Interlocked/Volatile only: the request path never
/// takes a lock here.
/// </summary>
internal sealed class BackendState
{
    private readonly TimeProvider _time;
    private HealthPolicy _policy;

    // Active health (written by the one checker loop of this backend, read by everyone).
    private int _status;
    private int _checkFailures;
    private int _checkSuccesses;
    private long _lastCheckUtcTicks;
    private double _lastResponseMs = double.NaN;
    private string? _lastError;

    // Passive health. Timestamps are TimeProvider.GetTimestamp() values; 0 means "not set".
    private long _ejectedUntil;
    private int _ejections;
    private int _passiveFailures;
    private int _trialInFlight;
    private long _readmittedAt;
    private long _slowStartBegin;
    private long _heldUntil;

    private int _inFlight;
    private int _capacity;
    private int _limit;
    private int _learned;
    private int _homeCapacity;
    private long _requests;
    private long _errors;

    /// <param name="capacity">Requests it may hold at once: its max_concurrency or MAX_CONNECTIONS, the smaller.</param>
    public BackendState(string service, string model, BackendConfig config, HealthPolicy policy, TimeProvider time, int capacity = int.MaxValue)
    {
        Service = service;
        Model = model;
        Config = config;
        _policy = policy;
        _capacity = _limit = _homeCapacity = capacity;
        _time = time;
        Stats = new BackendStats(time);
        Series = new RequestSeries(service, model, config.Id, Stats);
    }

    public string Service { get; }

    public string Model { get; }

    /// <summary>The backend's configuration (name and weight may change on reload; id and url do not).</summary>
    public BackendConfig Config { get; private set; }

    /// <summary>This backend's request metrics (Observability's series, found in the store on the first request).</summary>
    public RequestSeries Series { get; }

    /// <summary>The dashboard's windows (rates, latency percentiles, history) of this backend.</summary>
    public BackendStats Stats { get; }

    public HealthStatus Status => (HealthStatus)Volatile.Read(ref _status);

    public int ConsecutiveFailures => Volatile.Read(ref _checkFailures);

    public double LastResponseMs => Volatile.Read(ref _lastResponseMs);

    /// <summary>Why the last active check failed; null after a passed check.</summary>
    public string? LastError => Volatile.Read(ref _lastError);

    public DateTimeOffset? LastCheck
    {
        get
        {
            var ticks = Volatile.Read(ref _lastCheckUtcTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Requests => Interlocked.Read(ref _requests);

    public long Errors => Interlocked.Read(ref _errors);

    public int Ejections => Volatile.Read(ref _ejections);

    /// <summary>Raised (off the request path) when the active status changes: (state, old, new).</summary>
    public event Action<BackendState, HealthStatus, HealthStatus>? StatusChanged;

    public void Update(BackendConfig config, HealthPolicy policy, int capacity = int.MaxValue)
    {
        Config = config;
        _policy = policy;
        Volatile.Write(ref _limit, capacity);
        ApplyCapacity();
    }

    /// <summary>Requests this backend may hold at once (see <see cref="TryStart"/>): its configured limit, or the batch size its engine showed, the smaller.</summary>
    public int Capacity => Volatile.Read(ref _capacity);

    /// <summary>The batch size learnt from the engine's own metrics (<see cref="ObserveEngine"/>); null until the engine has queued a request, or with <c>max_concurrency</c> set.</summary>
    public int? LearnedConcurrency => Config.MaxConcurrency is null && Volatile.Read(ref _learned) is > 0 and var learned ? learned : null;

    /// <summary>
    /// What the engine reported of its batch: sequences running and requests waiting in its own queue.
    /// An engine that queues while running N serves N at once, so the gateway sends it at most N and
    /// lets the rest wait in the model's line, where the first backend with a free slot takes them;
    /// an engine that runs everything it was sent while the gateway holds it at that limit gets one
    /// more. <c>max_concurrency</c>, when set, is the operator's word and is not learnt over.
    /// </summary>
    public void ObserveEngine(int running, int waiting)
    {
        if (Config.MaxConcurrency is not null)
        {
            return;
        }
        var learned = Volatile.Read(ref _learned);
        if (waiting > 0 && running > 0)
        {
            learned = running;
        }
        else if (waiting == 0 && learned > 0 && Volatile.Read(ref _inFlight) >= learned)
        {
            learned++;
        }
        else
        {
            return;
        }
        Volatile.Write(ref _learned, learned);
        ApplyCapacity();
    }

    private void ApplyCapacity()
    {
        var learned = Config.MaxConcurrency is null ? Volatile.Read(ref _learned) : 0;
        var limit = Volatile.Read(ref _limit);
        Volatile.Write(ref _capacity, learned > 0 ? Math.Min(limit, learned) : limit);
        Volatile.Write(ref _homeCapacity, learned > 0 ? Math.Min(limit, learned + Math.Max(1, learned / 4)) : Math.Min(limit, Volatile.Read(ref _capacity)));
    }

    /// <summary>
    /// Requests this backend may hold when the request is a conversation coming home to the KV cache
    /// it left here: a learnt batch plus a quarter (at least one), waiting in the engine's own queue
    /// for a slot, because elsewhere the whole conversation would be computed again. A configured
    /// limit is hard: then it is <see cref="Capacity"/>.
    /// </summary>
    public int HomeCapacity => Volatile.Read(ref _homeCapacity);

    /// <summary>Below its capacity: a pick may choose it (<see cref="TryStart"/> still decides a race).</summary>
    public bool HasRoom => Volatile.Read(ref _inFlight) < Volatile.Read(ref _capacity);

    private bool HasRoomFor(bool home) => Volatile.Read(ref _inFlight) < (home ? Volatile.Read(ref _homeCapacity) : Volatile.Read(ref _capacity));

    /// <summary>True while passive health keeps this backend out (until its back-off ends and a trial succeeds).</summary>
    public bool IsEjected => Volatile.Read(ref _ejectedUntil) != 0;

    /// <summary>Wall-clock end of the current ejection, if ejected.</summary>
    public DateTimeOffset? EjectedUntil
    {
        get
        {
            var until = Volatile.Read(ref _ejectedUntil);
            if (until == 0)
            {
                return null;
            }
            var remaining = _time.GetElapsedTime(_time.GetTimestamp(), until);
            return _time.GetUtcNow() + (remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
        }
    }

    /// <summary>
    /// May a request go to this backend now? Unknown and healthy backends may, while below their
    /// capacity and past a Retry-After it asked for; unhealthy ones may not; an ejected one may take exactly one half-open trial once its
    /// back-off has passed.
    /// </summary>
    public Admission TryAdmit(long now, bool home = false)
    {
        if (Volatile.Read(ref _status) == (int)HealthStatus.Unhealthy || !HasRoomFor(home) || now < Volatile.Read(ref _heldUntil))
        {
            return Admission.Refused;
        }
        var until = Volatile.Read(ref _ejectedUntil);
        if (until == 0)
        {
            return Admission.Admitted;
        }
        if (now < until)
        {
            return Admission.Refused;
        }
        return Interlocked.CompareExchange(ref _trialInFlight, 1, 0) == 0 ? Admission.Trial : Admission.Refused;
    }

    /// <summary>
    /// Whether <see cref="TryAdmit"/> would admit now, without taking the half-open trial slot: the
    /// load-aware picks look at every candidate but admit only the one they choose, so an ejected
    /// backend's one trial is not used up by a backend that was merely compared.
    /// </summary>
    public bool MayAdmit(long now, bool home = false) => HasRoomFor(home) && HealthAdmits(now);

    /// <summary>Whether health alone would admit now (<see cref="MayAdmit"/> without the capacity).</summary>
    public bool HealthAdmits(long now)
    {
        if (Volatile.Read(ref _status) == (int)HealthStatus.Unhealthy || now < Volatile.Read(ref _heldUntil))
        {
            return false;
        }
        var until = Volatile.Read(ref _ejectedUntil);
        return until == 0 || (now >= until && Volatile.Read(ref _trialInFlight) == 0);
    }

    /// <summary>Share of its weight this backend should take now: ramps after re-admission (slow start).</summary>
    public double SlowStartFactor(long now)
    {
        var begin = Volatile.Read(ref _slowStartBegin);
        if (begin == 0 || _policy.SlowStart <= TimeSpan.Zero)
        {
            return 1.0;
        }
        var elapsed = _time.GetElapsedTime(begin, now);
        if (elapsed >= _policy.SlowStart)
        {
            Interlocked.CompareExchange(ref _slowStartBegin, 0, begin);
            return 1.0;
        }
        return Math.Max(0.1, elapsed / _policy.SlowStart);
    }

    // ---- active health ------------------------------------------------------------------------

    /// <summary>Records one active check. Thresholds keep one blip from flipping the status.</summary>
    /// <param name="passed">2xx within the timeout.</param>
    /// <param name="responseMs">How long the check took.</param>
    /// <param name="error">Why it failed ("connection refused", "HTTP 503", "timeout"), for operators.</param>
    public void ReportCheck(bool passed, double responseMs, string? error = null)
    {
        // A failed check has no meaningful response time (a refused connect "answers" in 0.1 ms).
        Volatile.Write(ref _lastResponseMs, passed ? responseMs : double.NaN);
        Volatile.Write(ref _lastError, passed ? null : error ?? "failed");
        Stats.RecordCheck(passed);
        Volatile.Write(ref _lastCheckUtcTicks, _time.GetUtcNow().UtcTicks);
        var old = (HealthStatus)Volatile.Read(ref _status);
        var next = old;
        if (passed)
        {
            Volatile.Write(ref _checkFailures, 0);
            var successes = Interlocked.Increment(ref _checkSuccesses);
            if (old != HealthStatus.Healthy && successes >= _policy.HealthyThreshold)
            {
                next = HealthStatus.Healthy;
            }
        }
        else
        {
            Volatile.Write(ref _checkSuccesses, 0);
            var failures = Interlocked.Increment(ref _checkFailures);
            if (old != HealthStatus.Unhealthy && failures >= _policy.UnhealthyThreshold)
            {
                next = HealthStatus.Unhealthy;
            }
        }
        if (next != old)
        {
            Volatile.Write(ref _status, (int)next);
            if (old == HealthStatus.Unhealthy && next == HealthStatus.Healthy)
            {
                // Coming back from an outage: ramp up instead of taking the full share at once.
                Volatile.Write(ref _slowStartBegin, _time.GetTimestamp());
            }
            StatusChanged?.Invoke(this, old, next);
        }
    }

    // ---- live traffic ---------------------------------------------------------------------------

    /// <summary>
    /// Counts a request in flight unless the backend is at its capacity (false: a racing pick took
    /// the last slot). Lock-free: a compare-and-swap on the in-flight count.
    /// </summary>
    public bool TryStart(bool home = false)
    {
        var seen = Volatile.Read(ref _inFlight);
        while (true)
        {
            if (seen >= (home ? Volatile.Read(ref _homeCapacity) : Volatile.Read(ref _capacity)))
            {
                return false;
            }
            var was = Interlocked.CompareExchange(ref _inFlight, seen + 1, seen);
            if (was == seen)
            {
                Interlocked.Increment(ref _requests);
                return true;
            }
            seen = was;
        }
    }

    public void OnRequestEnd(bool error)
    {
        Interlocked.Decrement(ref _inFlight);
        if (error)
        {
            Interlocked.Increment(ref _errors);
        }
    }

    /// <summary>A live request succeeded (a non-5xx answer): clears the failure streak; a successful trial re-admits.</summary>
    public void ReportSuccess(bool trial)
    {
        if (Volatile.Read(ref _passiveFailures) != 0)
        {
            Volatile.Write(ref _passiveFailures, 0);
        }
        if (trial)
        {
            var now = _time.GetTimestamp();
            Volatile.Write(ref _readmittedAt, now);
            Volatile.Write(ref _slowStartBegin, now);
            Volatile.Write(ref _ejectedUntil, 0);
            Volatile.Write(ref _trialInFlight, 0);
        }
    }

    /// <summary>
    /// A live request failed: a connection failure (ejects at once) or a 5xx (ejects after
    /// PassiveFailureThreshold in a row). <paramref name="mayEject"/> enforces the per-model cap.
    /// Returns the ejection length when this call ejected the backend.
    /// </summary>
    public TimeSpan? ReportFailure(bool trial, bool connectionFailure, Func<bool> mayEject)
    {
        var now = _time.GetTimestamp();
        if (trial)
        {
            // The half-open trial failed: back off longer; the trial slot frees with the new ejection.
            var duration = Eject(now, replace: true);
            Volatile.Write(ref _trialInFlight, 0);
            return duration;
        }
        var failures = Interlocked.Increment(ref _passiveFailures);
        if (Volatile.Read(ref _ejectedUntil) != 0)
        {
            return null;
        }
        if ((connectionFailure || failures >= _policy.PassiveFailureThreshold) && mayEject())
        {
            return Eject(now, replace: false);
        }
        return null;
    }

    /// <summary>
    /// The backend refused a request with a `Retry-After` (429 or 503): it takes no request until
    /// then, at most the longest ejection (EJECTION_MAX) however long it asks for.
    /// </summary>
    public void HoldOff(TimeSpan retryAfter, long now)
    {
        var hold = retryAfter < _policy.EjectionMax ? retryAfter : _policy.EjectionMax;
        if (hold > TimeSpan.Zero)
        {
            Volatile.Write(ref _heldUntil, now + (long)(hold.TotalSeconds * _time.TimestampFrequency));
        }
    }

    /// <summary>While a backend's Retry-After runs: when it ends (wall clock), else null.</summary>
    public DateTimeOffset? HeldUntil
    {
        get
        {
            var remaining = _time.GetElapsedTime(_time.GetTimestamp(), Volatile.Read(ref _heldUntil));
            return remaining > TimeSpan.Zero ? _time.GetUtcNow() + remaining : null;
        }
    }

    /// <summary>A trial that ended without a verdict (client went away) frees the trial slot.</summary>
    public void AbandonTrial() => Volatile.Write(ref _trialInFlight, 0);

    /// <param name="replace">
    /// True for a failed trial (the backend is ejected already; extend it). False for live failures:
    /// then only the first of several concurrent failures ejects. When a backend dies, every request
    /// in flight to it fails at the same moment; each passing the "not ejected yet" check and ejecting
    /// again doubled the back-off per request (seen: ejections #1..#7 in one millisecond, 300 s at once).
    /// </param>
    private TimeSpan? Eject(long now, bool replace)
    {
        // Repeated ejections back off exponentially; a backend that stayed good for a while starts over.
        var readmitted = Volatile.Read(ref _readmittedAt);
        if (readmitted != 0 && _time.GetElapsedTime(readmitted, now) > _policy.EjectionMax + _policy.EjectionMax)
        {
            Volatile.Write(ref _ejections, 0);
        }
        var count = Volatile.Read(ref _ejections) + 1;
        var factor = Math.Pow(2, Math.Min(count - 1, 30));
        var duration = TimeSpan.FromTicks((long)Math.Min(_policy.EjectionBase.Ticks * factor, _policy.EjectionMax.Ticks));
        var until = now + (long)(duration.TotalSeconds * _time.TimestampFrequency);
        if (until == 0)
        {
            until = 1;
        }
        if (replace)
        {
            Volatile.Write(ref _ejectedUntil, until);
        }
        else if (Interlocked.CompareExchange(ref _ejectedUntil, until, 0) != 0)
        {
            return null; // a concurrent failure ejected it first: one outage, one ejection
        }
        Volatile.Write(ref _ejections, count);
        Volatile.Write(ref _passiveFailures, 0);
        return duration;
    }
}

/// <summary>The answer of <see cref="BackendState.TryAdmit"/>.</summary>
internal enum Admission
{
    Refused,
    Admitted,

    /// <summary>Admitted as the one half-open trial of an ejected backend; its outcome decides re-admission.</summary>
    Trial,
}
