using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace EdgeProxy.Configuration;

/// <summary>
/// Parses and validates backends.json. Every problem is collected with the path of the offending
/// field (`services.google.models.gemma.backends[1].url`) so an operator fixes the file in one go.
/// Accepts both spellings found in the replaced product's docs: `"models"` and `"model"`.
/// </summary>
internal static class BackendsConfigLoader
{
    /// <summary>Backends per model are bounded so failover bookkeeping fits one 64-bit mask.</summary>
    public const int MaxBackendsPerModel = 64;

    /// <summary>Weights are bounded so the smooth round-robin sequence stays small.</summary>
    public const int MaxWeight = 1000;

    /// <summary>
    /// Largest balance_factor accepted; at this value a key's backend is never overloaded in
    /// practice, which is strict pinning (the behaviour before bounded loads).
    /// </summary>
    public const double MaxBalanceFactor = 1000;

    /// <summary>Bounds of `max_queue` (per model), `max_concurrency` (per backend) and `queue_timeout` (seconds).</summary>
    public const int MaxQueueLimit = 100_000;

    public const int MaxConcurrencyLimit = 100_000;

    public const double MaxQueueTimeoutSeconds = 3600;

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        // Hand-edited files: tolerate comments and trailing commas (the seed README shows `// ...`).
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 32,
    };

    public static BackendsConfig LoadFile(string path, List<string>? warnings = null)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ConfigException(path, [new ConfigError(path, $"cannot read file: {ex.Message}")]);
        }
        return Parse(bytes, path, warnings);
    }

    public static BackendsConfig Parse(ReadOnlyMemory<byte> json, string source, List<string>? warnings = null)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException ex)
        {
            var where = ex.LineNumber is long line ? $"line {line + 1}, column {ex.BytePositionInLine + 1}" : "(json)";
            throw new ConfigException(source, [new ConfigError(where, "invalid JSON: " + FirstSentence(ex.Message))]);
        }

        using (document)
        {
            var errors = new List<ConfigError>();
            var config = ReadRoot(document.RootElement, errors, warnings ?? []);
            if (errors.Count == 0 && config is not null)
            {
                CheckSharedTlsRules(config, errors);
            }
            if (errors.Count > 0)
            {
                throw new ConfigException(source, errors);
            }
            return config!;
        }
    }

    private static BackendsConfig? ReadRoot(JsonElement root, List<ConfigError> errors, List<string> warnings)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ConfigError("$", $"expected an object with \"services\", found {Describe(root)}"));
            return null;
        }
        if (!root.TryGetProperty("services", out var servicesElement))
        {
            errors.Add(new ConfigError("services", "is required"));
            return null;
        }
        WarnUnknown(root, "$", ["services"], warnings);
        if (servicesElement.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ConfigError("services", $"expected an object of services, found {Describe(servicesElement)}"));
            return null;
        }

        var services = new List<ServiceConfig>();
        foreach (var service in servicesElement.EnumerateObject())
        {
            var path = "services." + service.Name;
            if (!IsValidSegment(service.Name))
            {
                errors.Add(new ConfigError(path, "service name must be non-empty and must not contain '/', '?', '#', '%' or whitespace"));
            }
            var models = ReadService(service.Value, path, errors, warnings);
            if (models is not null)
            {
                services.Add(new ServiceConfig(service.Name, models));
            }
        }
        if (services.Count == 0 && errors.Count == 0)
        {
            errors.Add(new ConfigError("services", "no services defined"));
        }
        return new BackendsConfig(services);
    }

    private static List<ModelConfig>? ReadService(JsonElement service, string path, List<ConfigError> errors, List<string> warnings)
    {
        if (service.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ConfigError(path, $"expected an object with \"models\", found {Describe(service)}"));
            return null;
        }
        var hasModels = service.TryGetProperty("models", out var modelsElement);
        var hasModel = service.TryGetProperty("model", out var modelElement);
        if (hasModels && hasModel)
        {
            errors.Add(new ConfigError(path, "has both \"models\" and \"model\"; use one"));
            return null;
        }
        if (!hasModels && !hasModel)
        {
            errors.Add(new ConfigError(path + ".models", "is required"));
            return null;
        }
        var key = hasModels ? "models" : "model";
        var element = hasModels ? modelsElement : modelElement;
        WarnUnknown(service, path, ["models", "model"], warnings);
        path += "." + key;
        if (element.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ConfigError(path, $"expected an object of models, found {Describe(element)}"));
            return null;
        }

        var models = new List<ModelConfig>();
        foreach (var model in element.EnumerateObject())
        {
            var modelPath = path + "." + model.Name;
            if (!IsValidSegment(model.Name))
            {
                errors.Add(new ConfigError(modelPath, "model name must be non-empty and must not contain '/', '?', '#', '%' or whitespace"));
            }
            var config = ReadModel(model.Name, model.Value, modelPath, errors, warnings);
            if (config is not null)
            {
                models.Add(config);
            }
        }
        if (models.Count == 0 && !element.EnumerateObject().Any())
        {
            errors.Add(new ConfigError(path, "no models defined"));
        }
        return models;
    }

    private static ModelConfig? ReadModel(string name, JsonElement model, string path, List<ConfigError> errors, List<string> warnings)
    {
        if (model.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ConfigError(path, $"expected an object with \"backends\", found {Describe(model)}"));
            return null;
        }
        WarnUnknown(model, path, ["backends", "affinity", "balance", "balance_factor", "max_queue", "queue_timeout"], warnings);
        var affinity = AffinityConfig.Prefix;
        if (model.TryGetProperty("affinity", out var affinityElement))
        {
            affinity = ReadAffinity(affinityElement, path + ".affinity", errors);
        }
        var balance = BalancePolicy.RoundRobin;
        if (model.TryGetProperty("balance", out var balanceElement) && balanceElement.ValueKind != JsonValueKind.Null)
        {
            balance = ReadBalance(balanceElement, path + ".balance", errors);
        }
        // A factor of 1 or less leaves no headroom over the average: keys would move on every tie.
        var factor = ReadNumber(model, "balance_factor", path, 1, MaxBalanceFactor, $"expected a number greater than 1 and at most {MaxBalanceFactor}", errors)
            ?? ModelConfig.DefaultBalanceFactor;
        var maxQueue = ReadInteger(model, "max_queue", path, 0, MaxQueueLimit, errors) ?? ModelConfig.DefaultMaxQueue;
        var queueTimeout = ReadNumber(model, "queue_timeout", path, 0, MaxQueueTimeoutSeconds, $"expected seconds, a number greater than 0 and at most {MaxQueueTimeoutSeconds}", errors)
            is double seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
        if (!model.TryGetProperty("backends", out var backendsElement))
        {
            errors.Add(new ConfigError(path + ".backends", "is required"));
            return null;
        }
        path += ".backends";
        if (backendsElement.ValueKind != JsonValueKind.Array)
        {
            errors.Add(new ConfigError(path, $"expected an array of backends, found {Describe(backendsElement)}"));
            return null;
        }
        var count = backendsElement.GetArrayLength();
        if (count == 0)
        {
            errors.Add(new ConfigError(path, "is empty; a model needs at least one backend"));
            return null;
        }
        if (count > MaxBackendsPerModel)
        {
            errors.Add(new ConfigError(path, $"has {count} backends; at most {MaxBackendsPerModel} per model are supported"));
            return null;
        }

        var backends = new List<BackendConfig>(count);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var index = 0;
        foreach (var backend in backendsElement.EnumerateArray())
        {
            var backendPath = $"{path}[{index}]";
            var config = ReadBackend(backend, backendPath, errors, warnings);
            // Ids are checked for backends with other errors too, so one pass reports every problem.
            if ((config?.Id ?? IdOf(backend)) is { } id)
            {
                if (ids.TryGetValue(id, out var first))
                {
                    errors.Add(new ConfigError(backendPath + ".id", $"duplicate id '{id}' (also {path}[{first}])"));
                }
                else
                {
                    ids[id] = index;
                }
            }
            if (config is not null)
            {
                backends.Add(config);
            }
            index++;
        }
        return new ModelConfig(name, backends, affinity, balance, factor, maxQueue, queueTimeout);
    }

    /// <summary>
    /// An optional number above <paramref name="above"/> and at most <paramref name="max"/>; null when
    /// absent or wrong (wrong is an error: <paramref name="expected"/>, then what was found).
    /// </summary>
    private static double? ReadNumber(JsonElement owner, string name, string path, double above, double max, string expected, List<ConfigError> errors)
    {
        if (!owner.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (element.ValueKind == JsonValueKind.Number && element.TryGetDouble(out var value) && double.IsFinite(value) && value > above && value <= max)
        {
            return value;
        }
        errors.Add(new ConfigError($"{path}.{name}", $"{expected}, found {Describe(element)}"));
        return null;
    }

    private static BalancePolicy ReadBalance(JsonElement element, string path, List<ConfigError> errors)
    {
        var value = element.ValueKind == JsonValueKind.String ? element.GetString()!.Trim() : null;
        switch (value?.ToLowerInvariant())
        {
            case "round_robin":
                return BalancePolicy.RoundRobin;
            case "least_outstanding":
                return BalancePolicy.LeastOutstanding;
        }
        errors.Add(new ConfigError(path, $"expected \"round_robin\" or \"least_outstanding\", found {Describe(element)}"));
        return BalancePolicy.RoundRobin;
    }

    /// <summary>An optional integer field from <paramref name="min"/> to <paramref name="max"/>; null when absent or wrong (wrong is an error).</summary>
    private static int? ReadInteger(JsonElement owner, string name, string path, int min, int max, List<ConfigError> errors)
    {
        if (!owner.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        var expected = $"expected an integer from {min} to {max}, found";
        if (element.ValueKind != JsonValueKind.Number)
        {
            errors.Add(new ConfigError($"{path}.{name}", $"{expected} {Describe(element)}"));
        }
        else if (!element.TryGetInt32(out var value))
        {
            errors.Add(new ConfigError($"{path}.{name}", $"{expected} {element.GetRawText()} (not an integer)"));
        }
        else if (value < min || value > max)
        {
            errors.Add(new ConfigError($"{path}.{name}", $"{expected} {value}"));
        }
        else
        {
            return value;
        }
        return null;
    }

    private static string? IdOf(JsonElement backend)
        => backend.ValueKind == JsonValueKind.Object && backend.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
            && id.GetString()!.Trim() is { Length: > 0 } value ? value : null;

    private static AffinityConfig ReadAffinity(JsonElement element, string path, List<ConfigError> errors)
    {
        var value = element.ValueKind == JsonValueKind.String ? element.GetString()!.Trim() : null;
        switch (value?.ToLowerInvariant())
        {
            case "client_ip":
            case "ip":
                return AffinityConfig.ClientIp;
            case "none":
                return new AffinityConfig(AffinityKind.None);
            case "prefix":
                return new AffinityConfig(AffinityKind.Prefix);
        }
        if (value is not null && value.StartsWith("header:", StringComparison.OrdinalIgnoreCase))
        {
            var header = value["header:".Length..].Trim();
            if (header.Length > 0 && header.All(c => c > 32 && c < 127 && c != ':'))
            {
                return new AffinityConfig(AffinityKind.Header, header);
            }
        }
        errors.Add(new ConfigError(path, $"expected \"client_ip\", \"prefix\", \"none\" or \"header:<Name>\", found {Describe(element)}"));
        return AffinityConfig.ClientIp;
    }

    private static BackendConfig? ReadBackend(JsonElement backend, string path, List<ConfigError> errors, List<string> warnings)
    {
        if (backend.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ConfigError(path, $"expected a backend object, found {Describe(backend)}"));
            return null;
        }
        WarnUnknown(backend, path, ["id", "name", "url", "weight", "max_concurrency", "api_key", "auth_mode", "health_path", "metrics_path", "ca_file", "tls_skip_verify"], warnings);
        var before = errors.Count;

        var id = RequiredString(backend, "id", path, errors);
        var name = RequiredString(backend, "name", path, errors);
        var url = RequiredString(backend, "url", path, errors);
        if (url is not null)
        {
            url = ValidateUrl(url, path + ".url", errors);
        }

        var weight = ReadInteger(backend, "weight", path, 1, MaxWeight, errors) ?? 1;
        var maxConcurrency = ReadInteger(backend, "max_concurrency", path, 1, MaxConcurrencyLimit, errors);

        var apiKey = ReadApiKey(backend, path, errors);
        var authMode = ReadAuthMode(backend, path, errors);
        var healthPath = ReadPath(backend, "health_path", "/health", path, errors)!;
        var metricsPath = ReadPath(backend, "metrics_path", "/metrics", path, errors, offWhenEmpty: true);

        var (caFile, caCertificates, skipVerify) = ReadUpstreamTls(backend, path, url, errors, warnings);

        if (errors.Count > before)
        {
            return null;
        }
        return new BackendConfig
        {
            CaFile = caFile,
            CaCertificates = caCertificates,
            TlsSkipVerify = skipVerify,
            Id = id!,
            Name = name!,
            Url = url!,
            Weight = weight,
            MaxConcurrency = maxConcurrency,
            ApiKey = apiKey,
            AuthMode = authMode,
            HealthPath = healthPath,
            MetricsPath = metricsPath,
        };
    }

    /// <summary>`api_key`: a string without control characters; empty means none. A wrong shape is reported without echoing the value.</summary>
    private static string? ReadApiKey(JsonElement backend, string path, List<ConfigError> errors)
    {
        if (!backend.TryGetProperty("api_key", out var keyElement) || keyElement.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (keyElement.ValueKind != JsonValueKind.String)
        {
            // Never echo the value: it may be a secret typed in the wrong shape.
            errors.Add(new ConfigError(path + ".api_key", $"expected a string, found {keyElement.ValueKind.ToString().ToLowerInvariant()}"));
            return null;
        }
        var apiKey = keyElement.GetString()!;
        if (apiKey.Any(c => c < 32 || c == 127))
        {
            errors.Add(new ConfigError(path + ".api_key", "contains control characters"));
        }
        return apiKey.Length > 0 ? apiKey : null;
    }

    /// <summary>`auth_mode`: "Authorization" or "x-api-key"; null when absent (BACKEND_AUTH_MODE applies).</summary>
    private static UpstreamAuthMode? ReadAuthMode(JsonElement backend, string path, List<ConfigError> errors)
    {
        if (!backend.TryGetProperty("auth_mode", out var modeElement) || modeElement.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (modeElement.ValueKind == JsonValueKind.String && UpstreamAuthModes.TryParse(modeElement.GetString(), out var mode))
        {
            return mode;
        }
        errors.Add(new ConfigError(path + ".auth_mode", $"unknown auth_mode {Describe(modeElement)} (expected \"Authorization\" or \"x-api-key\")"));
        return null;
    }

    /// <summary>
    /// `health_path` (the active check's, "/health" by default) or `metrics_path` (the engine's
    /// metrics, "/metrics"; "" turns reading them off: null).
    /// </summary>
    private static string? ReadPath(JsonElement backend, string name, string fallback, string path, List<ConfigError> errors, bool offWhenEmpty = false)
    {
        if (!backend.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }
        var value = element.ValueKind == JsonValueKind.String ? element.GetString()! : null;
        if (offWhenEmpty && value == "")
        {
            return null;
        }
        if (value is null || !value.StartsWith('/') || value.Any(c => c <= 32 || c >= 127 || c == '#'))
        {
            errors.Add(new ConfigError(path + "." + name, $"expected a path starting with '/'{(offWhenEmpty ? " or \"\" (off)" : "")}, found {Describe(element)}"));
            return fallback;
        }
        return value;
    }

    /// <summary>
    /// `ca_file` (a private CA, PEM; relative paths from the working directory, like TLS_CERT_FILE) and
    /// `tls_skip_verify` (explicitly true) of an https backend. Without either, the system CAs verify it.
    /// </summary>
    private static (string? CaFile, IReadOnlyList<X509Certificate2> Ca, bool SkipVerify) ReadUpstreamTls(
        JsonElement backend, string path, string? url, List<ConfigError> errors, List<string> warnings)
    {
        var https = url is not null && url.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
        string? caFile = null;
        var ca = new List<X509Certificate2>();
        if (backend.TryGetProperty("ca_file", out var caElement) && caElement.ValueKind != JsonValueKind.Null)
        {
            if (caElement.ValueKind != JsonValueKind.String || caElement.GetString()!.Trim().Length == 0)
            {
                errors.Add(new ConfigError(path + ".ca_file", $"expected the path of a PEM file, found {Describe(caElement)}"));
            }
            else if (url is not null && !https)
            {
                errors.Add(new ConfigError(path + ".ca_file", "applies to https:// backends only"));
            }
            else
            {
                caFile = caElement.GetString()!.Trim();
                try
                {
                    var collection = new X509Certificate2Collection();
                    collection.ImportFromPemFile(caFile);
                    ca.AddRange(collection);
                    if (ca.Count == 0)
                    {
                        errors.Add(new ConfigError(path + ".ca_file", $"'{caFile}' holds no -----BEGIN CERTIFICATE----- block"));
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
                {
                    var reason = ex is FileNotFoundException or DirectoryNotFoundException ? "file not found" : ex.Message;
                    errors.Add(new ConfigError(path + ".ca_file", $"cannot read '{caFile}': {reason}"));
                }
            }
        }
        var skip = false;
        if (backend.TryGetProperty("tls_skip_verify", out var skipElement) && skipElement.ValueKind != JsonValueKind.Null)
        {
            if (skipElement.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                errors.Add(new ConfigError(path + ".tls_skip_verify", $"expected true or false, found {Describe(skipElement)}"));
            }
            else if ((skip = skipElement.GetBoolean()) && url is not null && !https)
            {
                errors.Add(new ConfigError(path + ".tls_skip_verify", "applies to https:// backends only"));
            }
            else if (skip && caFile is not null)
            {
                errors.Add(new ConfigError(path + ".tls_skip_verify", "cannot be combined with ca_file (use one: ca_file verifies against a private CA, tls_skip_verify verifies nothing)"));
            }
            else if (skip && url is not null)
            {
                warnings.Add($"{path}.tls_skip_verify: the certificate of {url} is NOT verified; anyone on the network path can impersonate this backend");
            }
        }
        return (caFile, ca, skip);
    }

    /// <summary>
    /// A backend's TLS rule is found by its host when a connection opens (all the handshake tells),
    /// and backends on one host:port share connections: two https backends on one host with
    /// different rules could verify each other's connections. Such a config is refused.
    /// </summary>
    private static void CheckSharedTlsRules(BackendsConfig config, List<ConfigError> errors)
    {
        var seen = new Dictionary<string, (string Rule, string Path)>(StringComparer.OrdinalIgnoreCase);
        foreach (var service in config.Services)
        {
            foreach (var model in service.Models)
            {
                for (var i = 0; i < model.Backends.Count; i++)
                {
                    var backend = model.Backends[i];
                    if (!Uri.TryCreate(backend.Url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
                    {
                        continue;
                    }
                    var rule = backend.TlsSkipVerify ? "tls_skip_verify" : backend.CaFile is { } ca ? "ca_file " + ca : "system CAs";
                    var path = $"services.{service.Name}.models.{model.Name}.backends[{i}]";
                    var authority = uri.IdnHost;
                    if (seen.TryGetValue(authority, out var first) && first.Rule != rule)
                    {
                        errors.Add(new ConfigError(path, $"{authority} is verified by {rule} here but by {first.Rule} in {first.Path}; https backends on one host take one rule, so give them the same ca_file / tls_skip_verify"));
                    }
                    else
                    {
                        seen.TryAdd(authority, (rule, path));
                    }
                }
            }
        }
    }

    private static string? RequiredString(JsonElement obj, string field, string path, List<ConfigError> errors)
    {
        if (!obj.TryGetProperty(field, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            errors.Add(new ConfigError($"{path}.{field}", "is required"));
            return null;
        }
        if (element.ValueKind != JsonValueKind.String)
        {
            errors.Add(new ConfigError($"{path}.{field}", $"expected a string, found {Describe(element)}"));
            return null;
        }
        var value = element.GetString()!.Trim();
        if (value.Length == 0)
        {
            errors.Add(new ConfigError($"{path}.{field}", "must not be empty"));
            return null;
        }
        return value;
    }

    private static string? ValidateUrl(string url, string path, List<ConfigError> errors)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            errors.Add(new ConfigError(path, $"'{WithoutCredentials(url)}' is not an absolute http:// or https:// URL"));
            return null;
        }
        if (uri.Host.Length == 0)
        {
            errors.Add(new ConfigError(path, $"'{WithoutCredentials(url)}' has no host"));
            return null;
        }
        if (uri.UserInfo.Length > 0)
        {
            // Credentials in the URL would show on the dashboard and in logs; use api_key instead.
            errors.Add(new ConfigError(path, "must not contain credentials (user:password@); use api_key"));
            return null;
        }
        if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            errors.Add(new ConfigError(path, $"'{url}' must not have a query or fragment"));
            return null;
        }
        return uri.GetLeftPart(UriPartial.Path).TrimEnd('/');
    }

    /// <summary>The URL for an error message with any `user:password@` replaced, since errors are logged.</summary>
    private static string WithoutCredentials(string url)
    {
        var start = url.IndexOf("://", StringComparison.Ordinal);
        start = start < 0 ? 0 : start + 3;
        var end = url.IndexOfAny(['/', '?', '#'], start);
        var at = url.AsSpan(start, (end < 0 ? url.Length : end) - start).LastIndexOf('@');
        return at < 0 ? url : string.Concat(url.AsSpan(0, start), "***", url.AsSpan(start + at));
    }

    private static bool IsValidSegment(string name)
        => name.Length > 0 && !name.Any(c => c is '/' or '?' or '#' or '%' || char.IsWhiteSpace(c) || char.IsControl(c));

    private static void WarnUnknown(JsonElement obj, string path, string[] known, List<string> warnings)
    {
        foreach (var property in obj.EnumerateObject())
        {
            if (Array.IndexOf(known, property.Name) < 0)
            {
                warnings.Add($"{path}.{property.Name}: unknown field ignored");
            }
        }
    }

    private static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => $"\"{Truncate(element.GetString()!)}\"",
        JsonValueKind.Number => element.GetRawText(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => element.ValueKind.ToString(),
    };

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..57] + "...";

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(" Path:", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }
}
