using System.Text;
using System.Text.Json;
using EdgeProxy.Configuration;

namespace EdgeProxy.Tests.Unit.Configuration;

/// <summary>backends.json: the seed README's files load; every bad field is named with its path.</summary>
public sealed class BackendsConfigLoaderTests
{
    private static BackendsConfig Parse(string json, List<string>? warnings = null)
        => BackendsConfigLoader.Parse(Encoding.UTF8.GetBytes(json), "backends.json", warnings);

    private static ConfigException Refused(string json)
        => Assert.Throws<ConfigException>(() => Parse(json));

    // ---- the seed README's examples, verbatim ---------------------------------------------------

    /// <summary>Quick start: the singular `"model"` spelling, Chinese display name.</summary>
    private const string SeedQuickStart = """
        {
        "services": {
        "google": {
        "model": {
        "gemma-4-26b-a4b-it": {
        "backends": [
        {
        "id": "backend-1",
        "name": "后端节点1",
        "url": "http://192.168.1.10:5000",
        "weight": 1,
        "api_key": "sk-backend-key",
        "auth_mode": "Authorization"
        }
        ]
        }
        }
        }
        }
        }
        """;

    /// <summary>方案 1: the plural `"models"`, global key (no api_key).</summary>
    private const string SeedPlan1 = """
        {
        "services": {
        "google": {
        "models": {
        "gemma-4-26b-a4b-it": {
        "backends": [
        {
        "id": "backend-1",
        "name": "后端节点1",
        "url": "http://192.168.1.10:5000",
        "weight": 1
        }
        ]
        }
        }
        }
        }
        }
        """;

    /// <summary>方案 2: per-backend keys in both auth modes.</summary>
    private const string SeedPlan2 = """
        {
        "services": {
        "google": {
        "models": {
        "gemma-4-26b-a4b-it": {
        "backends": [
        {
        "id": "backend-1",
        "name": "后端节点1",
        "url": "http://192.168.1.10:5000",
        "weight": 1,
        "api_key": "sk-backend1-unique-key-abc123",
        "auth_mode": "Authorization"
        },
        {
        "id": "backend-2",
        "name": "后端节点2",
        "url": "http://192.168.1.11:5000",
        "weight": 1,
        "api_key": "sk-backend2-unique-key-xyz789",
        "auth_mode": "x-api-key"
        }
        ]
        }
        }
        }
        }
        }
        """;

    /// <summary>Multi-provider example: https URLs, no weight (default 1).</summary>
    private const string SeedProviders = """
        {
        "services": {
        "llm": {
        "models": {
        "gpt-4": {
        "backends": [
        {
        "id": "openai-backend",
        "name": "OpenAI",
        "url": "https://api.openai.com",
        "api_key": "sk-openai-prod-key-12345",
        "auth_mode": "Authorization"
        },
        {
        "id": "azure-backend",
        "name": "Azure OpenAI",
        "url": "https://myresource.openai.azure.com",
        "api_key": "azure-api-key-67890",
        "auth_mode": "x-api-key"
        }
        ]
        }
        }
        }
        }
        }
        """;

    [Fact]
    public void Seed_quick_start_with_singular_model_loads()
    {
        var config = Parse(SeedQuickStart);
        var service = Assert.Single(config.Services);
        Assert.Equal("google", service.Name);
        var model = Assert.Single(service.Models);
        Assert.Equal("gemma-4-26b-a4b-it", model.Name);
        Assert.Equal(AffinityKind.Prefix, model.Affinity.Kind);
        var backend = Assert.Single(model.Backends);
        Assert.Equal("backend-1", backend.Id);
        Assert.Equal("后端节点1", backend.Name);
        Assert.Equal("http://192.168.1.10:5000", backend.Url);
        Assert.Equal(1, backend.Weight);
        Assert.Equal("sk-backend-key", backend.ApiKey);
        Assert.Equal(UpstreamAuthMode.Authorization, backend.AuthMode);
        Assert.Equal("/health", backend.HealthPath);
    }

    [Fact]
    public void Seed_plan1_with_plural_models_loads_without_a_key()
    {
        var backend = Assert.Single(Assert.Single(Assert.Single(Parse(SeedPlan1).Services).Models).Backends);
        Assert.Equal("后端节点1", backend.Name);
        Assert.Null(backend.ApiKey);
        Assert.Null(backend.AuthMode);
    }

    [Fact]
    public void Seed_plan2_loads_both_auth_modes()
    {
        var backends = Assert.Single(Assert.Single(Parse(SeedPlan2).Services).Models).Backends;
        Assert.Equal(["backend-1", "backend-2"], backends.Select(b => b.Id));
        Assert.Equal([UpstreamAuthMode.Authorization, UpstreamAuthMode.XApiKey], backends.Select(b => b.AuthMode!.Value));
        Assert.Equal(["sk-backend1-unique-key-abc123", "sk-backend2-unique-key-xyz789"], backends.Select(b => b.ApiKey!));
    }

    [Fact]
    public void Seed_provider_example_loads_with_default_weight()
    {
        var config = Parse(SeedProviders);
        Assert.Equal(1, config.ModelCount);
        Assert.Equal(2, config.BackendCount);
        var backends = config.Services[0].Models[0].Backends;
        Assert.All(backends, b => Assert.Equal(1, b.Weight));
        Assert.Equal(["https://api.openai.com", "https://myresource.openai.azure.com"], backends.Select(b => b.Url));
    }

    [Fact]
    public void Seed_weight_snippet_with_a_line_comment_loads()
    {
        // The README's weight example carries `// 权重按轮询顺序应用`; hand-edited files keep such comments.
        const string json = """
            {"services": {"google": {"models": {"gemma": {"backends": [
            {
            "id": "backend-1",
            "name": "后端节点1",
            "url": "http://10.0.0.1:5000",
            "weight": 2 // 权重按轮询顺序应用
            },
            ]}}}}}
            """;
        Assert.Equal(2, Parse(json).Services[0].Models[0].Backends[0].Weight);
    }

    [Theory]
    [InlineData("model")]
    [InlineData("models")]
    public void Seed_field_template_is_refused_at_its_placeholder_fields(string spelling)
    {
        // The README's field template (服务名/模型名 with placeholder values) is documentation, not a
        // working file: the placeholders are reported with Chinese names intact in the path.
        var json = $$"""
            {
            "services": {
            "服务名": {
            "{{spelling}}": {
            "模型名": {
            "backends": [
            {
            "id": "唯一标识",
            "name": "显示名称",
            "url": "http://IP:PORT",
            "weight": 1,
            "api_key": "可选后端密钥",
            "auth_mode": "Authorization 或 x-api-key"
            }
            ]
            }
            }
            }
            }
            }
            """;
        var ex = Refused(json);
        var prefix = $"services.服务名.{spelling}.模型名.backends[0]";
        Assert.Equal([prefix + ".auth_mode", prefix + ".url"], ex.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.DoesNotContain("可选后端密钥", ex.Message);
    }

    // ---- one row per bad field -----------------------------------------------------------------

    private const string B = "services.svc.models.m.backends";

    private static string WithBackends(string backends) =>
        """{"services": {"svc": {"models": {"m": {"backends": [""" + backends + "]}}}}}";

    private static string Backend(string extra = "", string id = "\"b1\"", string name = "\"Node\"", string url = "\"http://10.0.0.1:5000\"")
    {
        var fields = new List<string>();
        if (id.Length > 0)
        {
            fields.Add($"\"id\": {id}");
        }
        if (name.Length > 0)
        {
            fields.Add($"\"name\": {name}");
        }
        if (url.Length > 0)
        {
            fields.Add($"\"url\": {url}");
        }
        if (extra.Length > 0)
        {
            fields.Add(extra);
        }
        return "{" + string.Join(", ", fields) + "}";
    }

    /// <summary>One model `m` with one backend and the given model-level fields.</summary>
    private static string Model(string fields) =>
        """{"services": {"svc": {"models": {"m": {""" + fields + """, "backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""";

    public static TheoryData<string, string, string, string> BadFields => new()
    {
        // name, document, expected path, message fragment
        { "auth_mode unknown", WithBackends(Backend("\"auth_mode\": \"Basic\"")), B + "[0].auth_mode", "unknown auth_mode" },
        { "auth_mode not a string", WithBackends(Backend("\"auth_mode\": 1")), B + "[0].auth_mode", "unknown auth_mode" },
        { "duplicate id", WithBackends(Backend() + "," + Backend(url: "\"http://10.0.0.2:5000\"")), B + "[1].id", "duplicate id 'b1'" },
        { "url relative", WithBackends(Backend(url: "\"/v1\"")), B + "[0].url", "absolute http" },
        { "url host:port without scheme", WithBackends(Backend(url: "\"192.168.1.10:5000\"")), B + "[0].url", "absolute http" },
        { "url ftp", WithBackends(Backend(url: "\"ftp://10.0.0.1/models\"")), B + "[0].url", "absolute http" },
        { "url with credentials", WithBackends(Backend(url: "\"http://user:pw@10.0.0.1:5000\"")), B + "[0].url", "credentials" },
        { "url with query", WithBackends(Backend(url: "\"http://10.0.0.1:5000/?a=1\"")), B + "[0].url", "query" },
        { "url with fragment", WithBackends(Backend(url: "\"http://10.0.0.1:5000/#x\"")), B + "[0].url", "fragment" },
        { "url not a string", WithBackends(Backend(url: "5000")), B + "[0].url", "expected a string" },
        { "url empty", WithBackends(Backend(url: "\"  \"")), B + "[0].url", "must not be empty" },
        { "weight 0", WithBackends(Backend("\"weight\": 0")), B + "[0].weight", "from 1 to 1000, found 0" },
        { "weight -1", WithBackends(Backend("\"weight\": -1")), B + "[0].weight", "from 1 to 1000, found -1" },
        { "weight 1.5", WithBackends(Backend("\"weight\": 1.5")), B + "[0].weight", "not an integer" },
        { "weight \"2\"", WithBackends(Backend("\"weight\": \"2\"")), B + "[0].weight", "found \"2\"" },
        { "weight 1001", WithBackends(Backend("\"weight\": 1001")), B + "[0].weight", "from 1 to 1000, found 1001" },
        { "weight huge", WithBackends(Backend("\"weight\": 99999999999")), B + "[0].weight", "not an integer" },
        { "weight true", WithBackends(Backend("\"weight\": true")), B + "[0].weight", "found true" },
        { "empty backends", WithBackends(""), B, "is empty" },
        { "missing id", WithBackends(Backend(id: "")), B + "[0].id", "is required" },
        { "null id", WithBackends(Backend(id: "null")), B + "[0].id", "is required" },
        { "empty id", WithBackends(Backend(id: "\"\"")), B + "[0].id", "must not be empty" },
        { "id not a string", WithBackends(Backend(id: "7")), B + "[0].id", "expected a string, found 7" },
        { "missing name", WithBackends(Backend(name: "")), B + "[0].name", "is required" },
        { "missing url", WithBackends(Backend(url: "")), B + "[0].url", "is required" },
        { "backend not an object", WithBackends("\"http://10.0.0.1:5000\""), B + "[0]", "expected a backend object" },
        { "health_path relative", WithBackends(Backend("\"health_path\": \"health\"")), B + "[0].health_path", "starting with '/'" },
        { "health_path with space", WithBackends(Backend("\"health_path\": \"/he alth\"")), B + "[0].health_path", "starting with '/'" },
        { "health_path not a string", WithBackends(Backend("\"health_path\": 200")), B + "[0].health_path", "starting with '/'" },
        { "metrics_path relative", WithBackends(Backend("\"metrics_path\": \"metrics\"")), B + "[0].metrics_path", "starting with '/' or \"\" (off)" },
        { "metrics_path false", WithBackends(Backend("\"metrics_path\": false")), B + "[0].metrics_path", "found false" },
        { "backends not an array", """{"services": {"svc": {"models": {"m": {"backends": {}}}}}}""", B, "expected an array" },
        { "backends missing", """{"services": {"svc": {"models": {"m": {}}}}}""", B, "is required" },
        { "model not an object", """{"services": {"svc": {"models": {"m": []}}}}""", "services.svc.models.m", "expected an object" },
        { "models empty", """{"services": {"svc": {"models": {}}}}""", "services.svc.models", "no models defined" },
        { "models not an object", """{"services": {"svc": {"models": []}}}""", "services.svc.models", "expected an object of models" },
        { "models missing", """{"services": {"svc": {}}}""", "services.svc.models", "is required" },
        { "service not an object", """{"services": {"svc": []}}""", "services.svc", "expected an object" },
        { "service a string", """{"services": {"svc": "http://10.0.0.1"}}""", "services.svc", "expected an object" },
        { "both models and model", """{"services": {"svc": {"models": {}, "model": {}}}}""", "services.svc", "both \"models\" and \"model\"" },
        { "service name with slash", """{"services": {"a/b": {"models": {"m": {"backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""", "services.a/b", "must not contain '/'" },
        { "model name with space", """{"services": {"svc": {"models": {"m 1": {"backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""", "services.svc.models.m 1", "must not contain" },
        { "affinity unknown", """{"services": {"svc": {"models": {"m": {"affinity": "sticky", "backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""", "services.svc.models.m.affinity", "\"client_ip\", \"prefix\", \"none\" or \"header:<Name>\"" },
        { "affinity header without name", """{"services": {"svc": {"models": {"m": {"affinity": "header:", "backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""", "services.svc.models.m.affinity", "header:<Name>" },
        { "affinity not a string", """{"services": {"svc": {"models": {"m": {"affinity": true, "backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""", "services.svc.models.m.affinity", "found true" },
        { "balance unknown", Model("\"balance\": \"random\""), "services.svc.models.m.balance", "\"round_robin\" or \"least_outstanding\", found \"random\"" },
        { "balance not a string", Model("\"balance\": 1"), "services.svc.models.m.balance", "found 1" },
        { "balance_factor 1", Model("\"balance_factor\": 1"), "services.svc.models.m.balance_factor", "greater than 1" },
        { "balance_factor 0.5", Model("\"balance_factor\": 0.5"), "services.svc.models.m.balance_factor", "found 0.5" },
        { "balance_factor negative", Model("\"balance_factor\": -2"), "services.svc.models.m.balance_factor", "found -2" },
        { "balance_factor huge", Model("\"balance_factor\": 1e9"), "services.svc.models.m.balance_factor", "at most 1000" },
        { "balance_factor a string", Model("\"balance_factor\": \"1.5\""), "services.svc.models.m.balance_factor", "found \"1.5\"" },
        { "max_queue negative", Model("\"max_queue\": -1"), "services.svc.models.m.max_queue", "from 0 to 100000, found -1" },
        { "max_queue a string", Model("\"max_queue\": \"10\""), "services.svc.models.m.max_queue", "found \"10\"" },
        { "max_queue fraction", Model("\"max_queue\": 2.5"), "services.svc.models.m.max_queue", "not an integer" },
        { "queue_timeout 0", Model("\"queue_timeout\": 0"), "services.svc.models.m.queue_timeout", "greater than 0" },
        { "queue_timeout huge", Model("\"queue_timeout\": 7200"), "services.svc.models.m.queue_timeout", "at most 3600, found 7200" },
        { "queue_timeout a string", Model("\"queue_timeout\": \"5s\""), "services.svc.models.m.queue_timeout", "found \"5s\"" },
        { "max_concurrency 0", WithBackends(Backend("\"max_concurrency\": 0")), B + "[0].max_concurrency", "from 1 to 100000, found 0" },
        { "max_concurrency a string", WithBackends(Backend("\"max_concurrency\": \"8\"")), B + "[0].max_concurrency", "found \"8\"" },
        { "empty services", """{"services": {}}""", "services", "no services defined" },
        { "services missing", """{"backends": []}""", "services", "is required" },
        { "services an array", """{"services": []}""", "services", "expected an object of services" },
        { "root an array", """[]""", "$", "expected an object" },
    };

    [Theory]
    [MemberData(nameof(BadFields))]
    public void Bad_field_is_refused_with_its_path(string name, string json, string path, string fragment)
    {
        var ex = Refused(json);
        var error = Assert.Single(ex.Errors);
        Assert.True(path == error.Path, $"{name}: expected path {path}, got {error.Path} ({error.Message})");
        Assert.Contains(fragment, error.Message);
        Assert.Contains(path + ": ", ex.Message);
        Assert.StartsWith("backends.json: ", ex.Message);
    }

    [Fact]
    public void Too_many_backends_per_model_is_refused()
    {
        var backends = string.Join(",", Enumerable.Range(0, BackendsConfigLoader.MaxBackendsPerModel + 1)
            .Select(i => Backend(id: $"\"b{i}\"", url: $"\"http://10.0.0.{i % 250 + 1}:{5000 + i}\"")));
        var error = Assert.Single(Refused(WithBackends(backends)).Errors);
        Assert.Equal(B, error.Path);
        Assert.Contains("at most 64", error.Message);
    }

    [Theory]
    [InlineData("{\"services\": {\n  \"svc\": {\n    \"models\": oops\n}}}", 3)]
    [InlineData("{\"services\": {\"svc\": {}}", 1)]
    [InlineData("\n\n\n{\"services\": {\"a\": 1,, \"b\": 2}}", 4)]
    public void Invalid_json_names_the_line(string json, int line)
    {
        var error = Assert.Single(Refused(json).Errors);
        Assert.StartsWith($"line {line}, column ", error.Path);
        Assert.StartsWith("invalid JSON", error.Message);
    }

    [Fact]
    public void A_file_with_several_errors_lists_all_of_them()
    {
        const string json = """
            {"services": {
              "google": {"models": {
                "gemma": {"backends": [
                  {"id": "a", "name": "A", "url": "ftp://10.0.0.1", "weight": 0},
                  {"id": "a", "name": "A2", "url": "http://10.0.0.2:5000", "auth_mode": "digest"},
                  {"name": "C", "url": "http://10.0.0.3:5000", "health_path": "nope"}
                ]},
                "empty": {"backends": []}
              }},
              "openai": {"model": {"gpt": {"affinity": "random", "backends": [{"id": "x", "name": "X", "url": "http://u:p@h"}]}}},
              "bad": 42
            }}
            """;
        var ex = Refused(json);
        Assert.Equal(
            new[]
            {
                "services.bad",
                "services.google.models.empty.backends",
                "services.google.models.gemma.backends[0].url",
                "services.google.models.gemma.backends[0].weight",
                "services.google.models.gemma.backends[1].auth_mode",
                "services.google.models.gemma.backends[1].id",
                "services.google.models.gemma.backends[2].health_path",
                "services.google.models.gemma.backends[2].id",
                "services.openai.model.gpt.affinity",
                "services.openai.model.gpt.backends[0].url",
            },
            ex.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.Contains("10 errors", ex.Message);
        Assert.DoesNotContain(":p@", ex.Message);
    }

    [Fact]
    public void Duplicate_ids_in_different_models_are_allowed()
    {
        const string json = """
            {"services": {"s": {"models": {
              "m1": {"backends": [{"id": "node", "name": "n", "url": "http://10.0.0.1:5000"}]},
              "m2": {"backends": [{"id": "node", "name": "n", "url": "http://10.0.0.1:5000"}]}
            }}}}
            """;
        Assert.Equal(2, Parse(json).ModelCount);
    }

    // ---- secrets --------------------------------------------------------------------------------

    [Theory]
    [InlineData("123456789012345")]
    [InlineData("[\"sk-secret-in-array-0001\"]")]
    [InlineData("{\"value\": \"sk-secret-in-object-0002\"}")]
    [InlineData("true")]
    public void Wrongly_typed_api_key_is_refused_without_echoing_it(string apiKey)
    {
        var ex = Refused(WithBackends(Backend($"\"api_key\": {apiKey}")));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(B + "[0].api_key", error.Path);
        Assert.Contains("expected a string", error.Message);
        foreach (var secret in new[] { "123456789012345", "sk-secret-in-array-0001", "sk-secret-in-object-0002" })
        {
            Assert.DoesNotContain(secret, ex.Message);
        }
    }

    [Fact]
    public void Api_key_with_control_characters_is_refused_without_echoing_it()
    {
        var ex = Refused(WithBackends(Backend("\"api_key\": \"sk-secret-\\u0007-bell\"")));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(B + "[0].api_key", error.Path);
        Assert.DoesNotContain("sk-secret", ex.Message);
    }

    [Fact]
    public void Api_key_never_appears_in_errors_of_other_fields()
    {
        var ex = Refused(WithBackends(Backend("\"api_key\": \"sk-top-secret-42\", \"weight\": 0, \"auth_mode\": \"nope\"")));
        Assert.Equal(2, ex.Errors.Count);
        Assert.DoesNotContain("sk-top-secret-42", ex.Message);
    }

    [Fact]
    public void Credentials_in_an_invalid_url_are_not_echoed()
    {
        // Rejected for its scheme before the credential check: the password must still not be printed.
        var ex = Refused(WithBackends(Backend(url: "\"ftp://admin:hunter2@10.0.0.1/\"")));
        Assert.Equal(B + "[0].url", Assert.Single(ex.Errors).Path);
        Assert.DoesNotContain("hunter2", ex.Message);
    }

    [Fact]
    public void Backend_to_string_never_prints_the_key()
    {
        var backend = Parse(SeedQuickStart).Services[0].Models[0].Backends[0];
        Assert.DoesNotContain("sk-backend-key", backend.ToString());
    }

    [Fact]
    public void Empty_api_key_means_none()
    {
        var backend = Parse(WithBackends(Backend("\"api_key\": \"\""))).Services[0].Models[0].Backends[0];
        Assert.Null(backend.ApiKey);
    }

    // ---- warnings, normalisation, options --------------------------------------------------------

    [Fact]
    public void Unknown_fields_are_warnings_not_errors()
    {
        const string json = """
            {"version": 2, "services": {"svc": {"description": "x", "models": {"m": {"timeout": 5, "backends": [
              {"id": "b", "name": "n", "url": "http://10.0.0.1:5000", "region": "eu", "priority": 1}
            ]}}}}}
            """;
        var warnings = new List<string>();
        var config = Parse(json, warnings);
        Assert.Equal(1, config.BackendCount);
        Assert.Equal(
            new[]
            {
                "$.version: unknown field ignored",
                "services.svc.description: unknown field ignored",
                "services.svc.models.m.backends[0].priority: unknown field ignored",
                "services.svc.models.m.backends[0].region: unknown field ignored",
                "services.svc.models.m.timeout: unknown field ignored",
            },
            warnings.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("http://10.0.0.1:5000/", "http://10.0.0.1:5000")]
    [InlineData("http://10.0.0.1:5000/v1/", "http://10.0.0.1:5000/v1")]
    [InlineData("  https://api.openai.com  ", "https://api.openai.com")]
    [InlineData("HTTP://Example.COM:8080", "http://example.com:8080")]
    [InlineData("http://[::1]:5000", "http://[::1]:5000")]
    public void Url_is_normalised_without_trailing_slash(string url, string expected)
    {
        var backend = Parse(WithBackends(Backend(url: $"\"{url}\""))).Services[0].Models[0].Backends[0];
        Assert.Equal(expected, backend.Url);
    }

    [Theory]
    [InlineData("client_ip", "ClientIp", null)]
    [InlineData("ip", "ClientIp", null)]
    [InlineData("NONE", "None", null)]
    [InlineData("header:X-Session-ID", "Header", "X-Session-ID")]
    [InlineData("Header: x-user ", "Header", "x-user")]
    [InlineData("prefix", "Prefix", null)]
    public void Affinity_spellings(string value, string kind, string? header)
    {
        var json = """{"services": {"s": {"models": {"m": {"affinity": """ + JsonSerializer.Serialize(value) + """, "backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}""";
        var affinity = Parse(json).Services[0].Models[0].Affinity;
        Assert.Equal(Enum.Parse<AffinityKind>(kind), affinity.Kind);
        Assert.Equal(header, affinity.HeaderName);
    }

    [Theory]
    [InlineData("", "RoundRobin", 1.25)]
    [InlineData("\"balance\": null, \"balance_factor\": null", "RoundRobin", 1.25)]
    [InlineData("\"balance\": \"round_robin\"", "RoundRobin", 1.25)]
    [InlineData("\"balance\": \"least_outstanding\"", "LeastOutstanding", 1.25)]
    [InlineData("\"balance\": \" Least_Outstanding \", \"balance_factor\": 2", "LeastOutstanding", 2.0)]
    [InlineData("\"balance_factor\": 1.1", "RoundRobin", 1.1)]
    [InlineData("\"balance_factor\": 1000", "RoundRobin", 1000.0)]
    public void Balance_and_balance_factor_are_read_with_defaults(string fields, string balance, double factor)
    {
        var warnings = new List<string>();
        var json = fields.Length == 0 ? WithBackends(Backend()) : Model(fields);
        var model = Parse(json, warnings).Services[0].Models[0];
        Assert.Equal(Enum.Parse<BalancePolicy>(balance), model.Balance);
        Assert.Equal(factor, model.BalanceFactor);
        Assert.Empty(warnings);
    }

    [Theory]
    [InlineData("", null, 512, 30.0)]
    [InlineData("\"max_queue\": 0, \"queue_timeout\": 2.5", null, 0, 2.5)]
    [InlineData("\"max_queue\": null, \"queue_timeout\": null", null, 512, 30.0)]
    [InlineData("\"max_queue\": 64", 8, 64, 30.0)]
    public void Queue_fields_and_max_concurrency_are_read_with_defaults(string fields, int? maxConcurrency, int maxQueue, double timeoutSeconds)
    {
        var warnings = new List<string>();
        var backend = maxConcurrency is null ? """{"id": "b", "name": "n", "url": "http://h"}""" : $$"""{"id": "b", "name": "n", "url": "http://h", "max_concurrency": {{maxConcurrency}}}""";
        var json = """{"services": {"svc": {"models": {"m": {""" + fields + (fields.Length > 0 ? ", " : "") + "\"backends\": [" + backend + "]}}}}}";
        var model = Parse(json, warnings).Services[0].Models[0];
        Assert.Equal(maxQueue, model.MaxQueue);
        Assert.Equal(TimeSpan.FromSeconds(timeoutSeconds), model.QueueTimeoutOrDefault);
        Assert.Equal(maxConcurrency, model.Backends[0].MaxConcurrency);
        Assert.Empty(warnings);
    }

    [Fact]
    public void Bad_balance_fields_of_two_models_are_all_listed()
    {
        var ex = Refused("""
            {"services": {"svc": {"models": {
              "a": {"balance": "fastest", "balance_factor": 0.9, "backends": [{"id": "b", "name": "n", "url": "http://h"}]},
              "b": {"balance_factor": true, "backends": [{"id": "b", "name": "n", "url": "http://h"}]}}}}}
            """);
        Assert.Equal(
            ["services.svc.models.a.balance", "services.svc.models.a.balance_factor", "services.svc.models.b.balance_factor"],
            ex.Errors.Select(e => e.Path).ToArray());
    }

    [Fact]
    public void Health_path_is_read()
    {
        var backend = Parse(WithBackends(Backend("\"health_path\": \"/v1/models?probe=1\""))).Services[0].Models[0].Backends[0];
        Assert.Equal("/v1/models?probe=1", backend.HealthPath);
    }

    [Theory]
    [InlineData("", "/metrics")]
    [InlineData("\"metrics_path\": null", "/metrics")]
    [InlineData("\"metrics_path\": \"/prometheus\"", "/prometheus")]
    [InlineData("\"metrics_path\": \"\"", null)]
    public void Metrics_path_defaults_to_metrics_and_empty_turns_it_off(string field, string? expected)
    {
        var backend = Parse(WithBackends(field.Length == 0 ? Backend() : Backend(field))).Services[0].Models[0].Backends[0];
        Assert.Equal(expected, backend.MetricsPath);
    }

    // ---- LoadFile --------------------------------------------------------------------------------

    [Fact]
    public void Load_file_reads_a_file()
    {
        using var dir = new UnitFixtures.TempDir();
        var path = dir.Write("backends.json", SeedPlan2);
        Assert.Equal(2, BackendsConfigLoader.LoadFile(path).BackendCount);
    }

    [Fact]
    public void Load_file_on_a_missing_path_is_a_clear_error()
    {
        using var dir = new UnitFixtures.TempDir();
        var path = Path.Combine(dir.Path, "nope", "backends.json");
        var ex = Assert.Throws<ConfigException>(() => BackendsConfigLoader.LoadFile(path));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(path, error.Path);
        Assert.Contains("cannot read file", error.Message);
    }

    [Fact]
    public void Load_file_on_a_directory_is_a_clear_error()
    {
        using var dir = new UnitFixtures.TempDir();
        var ex = Assert.Throws<ConfigException>(() => BackendsConfigLoader.LoadFile(dir.Path));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(dir.Path, error.Path);
        Assert.Contains("cannot read file", error.Message);
    }

    [Fact]
    public void Load_file_with_invalid_content_names_the_file()
    {
        using var dir = new UnitFixtures.TempDir();
        var path = dir.Write("backends.json", "{\"services\": {}}");
        var ex = Assert.Throws<ConfigException>(() => BackendsConfigLoader.LoadFile(path));
        Assert.StartsWith(path + ": 1 error", ex.Message);
    }
}
