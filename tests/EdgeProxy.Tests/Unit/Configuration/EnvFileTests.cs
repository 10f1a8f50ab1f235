using EdgeProxy.Configuration;

namespace EdgeProxy.Tests.Unit.Configuration;

/// <summary>The `.env` reader must read what python-dotenv (the replaced product's loader) reads.</summary>
public sealed class EnvFileTests
{
    private static Dictionary<string, string> Parse(string text, out List<ConfigError> errors)
    {
        errors = [];
        return EnvFile.Parse(text, ".env", errors);
    }

    private static string Value(string line)
    {
        var values = Parse(line, out var errors);
        Assert.Empty(errors);
        return Assert.Single(values).Value;
    }

    [Fact]
    public void Seed_readme_env_example_reads_every_variable()
    {
        // The seed README's `.env` block, verbatim apart from the Chinese comment lines.
        const string text = """
            # 应用端口
            PORT=8000

            # 后端配置文件路径
            BACKENDS_CONFIG_PATH=./config/backends.json
            # 健康检查间隔 (秒)
            HEALTH_CHECK_INTERVAL=30
            # 请求超时 (秒)
            REQUEST_TIMEOUT=30
            HEALTH_CHECK_TIMEOUT=5
            # 🔐 API 密钥认证
            BACKEND_API_KEY=your-secret-key-here
            BACKEND_AUTH_MODE=Authorization # 或 x-api-key
            """;
        var values = Parse(text, out var errors);
        Assert.Empty(errors);
        Assert.Equal(new Dictionary<string, string>
        {
            ["PORT"] = "8000",
            ["BACKENDS_CONFIG_PATH"] = "./config/backends.json",
            ["HEALTH_CHECK_INTERVAL"] = "30",
            ["REQUEST_TIMEOUT"] = "30",
            ["HEALTH_CHECK_TIMEOUT"] = "5",
            ["BACKEND_API_KEY"] = "your-secret-key-here",
            ["BACKEND_AUTH_MODE"] = "Authorization",
        }, values);
    }

    [Theory]
    [InlineData("KEY=value", "value")]
    [InlineData("KEY = value ", "value")]
    [InlineData("  KEY=value", "value")]
    [InlineData("export KEY=value", "value")]
    [InlineData("export   KEY=value", "value")]
    [InlineData("KEY=", "")]
    [InlineData("KEY=a=b=c", "a=b=c")]
    [InlineData("KEY=Authorization # 或 x-api-key", "Authorization")]
    [InlineData("KEY=value\t# tab before the comment", "value")]
    [InlineData("KEY=  # only a comment", "")]
    [InlineData("KEY=http://h/#anchor", "http://h/#anchor")]
    [InlineData("KEY=abc#def", "abc#def")]
    [InlineData("KEY=#starts-with-hash", "#starts-with-hash")]
    [InlineData("KEY=sk-中文-密钥", "sk-中文-密钥")]
    [InlineData("KEY.with-dots_and-dash=1", "1")]
    public void Unquoted_values(string line, string expected) => Assert.Equal(expected, Value(line));

    [Theory]
    [InlineData("KEY=\"two words\"", "two words")]
    [InlineData("KEY=\"has # hash\"", "has # hash")]
    [InlineData("KEY=\"value\" # comment", "value")]
    [InlineData("KEY=\"value\"# comment", "value")]
    [InlineData("KEY=\"\"", "")]
    [InlineData("KEY=\"line1\\nline2\"", "line1\nline2")]
    [InlineData("KEY=\"tab\\there\"", "tab\there")]
    [InlineData("KEY=\"cr\\rhere\"", "cr\rhere")]
    [InlineData("KEY=\"quote \\\" inside\"", "quote \" inside")]
    [InlineData("KEY=\"back\\\\slash\"", "back\\slash")]
    [InlineData("KEY=\"single \\' quote\"", "single ' quote")]
    [InlineData("KEY=\"ends with backslash\\\\\"", "ends with backslash\\")]
    // python-dotenv decodes only \\ \' \" \a \b \f \n \r \t \v; any other backslash stays as typed.
    [InlineData("KEY=\"C:\\Users\\me\"", "C:\\Users\\me")]
    [InlineData("KEY=\"sk-\\xyz\"", "sk-\\xyz")]
    public void Double_quoted_values_decode_escapes(string line, string expected) => Assert.Equal(expected, Value(line));

    [Theory]
    [InlineData("KEY='two words'", "two words")]
    [InlineData("KEY='no \\n escape'", "no \\n escape")]
    [InlineData("KEY='has \"double\" quotes'", "has \"double\" quotes")]
    [InlineData("KEY='value' # comment", "value")]
    // python-dotenv: in single quotes only \\ and \' are escapes.
    [InlineData("KEY='it\\'s'", "it's")]
    [InlineData("KEY='back\\\\slash'", "back\\slash")]
    public void Single_quoted_values_are_literal_except_backslash_and_quote(string line, string expected) => Assert.Equal(expected, Value(line));

    [Fact]
    public void Crlf_line_endings_are_not_part_of_values()
    {
        var values = Parse("A=1\r\nB=\"two\"\r\n# c\r\nC=x # y\r\n", out var errors);
        Assert.Empty(errors);
        Assert.Equal("1", values["A"]);
        Assert.Equal("two", values["B"]);
        Assert.Equal("x", values["C"]);
    }

    [Fact]
    public void Later_assignment_wins()
    {
        var values = Parse("A=1\nA=2\n", out var errors);
        Assert.Empty(errors);
        Assert.Equal("2", values["A"]);
    }

    [Fact]
    public void Comments_and_blank_lines_are_ignored()
    {
        var values = Parse("# PORT=1\n\n   \n  # indented comment\nPORT=2\n", out var errors);
        Assert.Empty(errors);
        Assert.Equal("2", Assert.Single(values).Value);
    }

    [Theory]
    [InlineData("NOT A PAIR", 3)]
    [InlineData("=value", 3)]
    [InlineData("BAD KEY=value", 3)]
    [InlineData("KEY:value", 3)]
    [InlineData("KEY=\"unterminated", 3)]
    [InlineData("KEY='unterminated", 3)]
    [InlineData("KEY=\"quoted\" trailing garbage", 3)]
    public void Bad_line_is_an_error_with_its_line_number(string bad, int line)
    {
        var values = Parse($"# header\nGOOD=1\n{bad}\nALSO_GOOD=2\n", out var errors);
        var error = Assert.Single(errors);
        Assert.Equal($".env:{line}", error.Path);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
        // The good lines around it still parse, so every error of the file is reported in one go.
        Assert.Equal("1", values["GOOD"]);
        Assert.Equal("2", values["ALSO_GOOD"]);
    }

    [Fact]
    public void Every_bad_line_is_reported_with_crlf_line_numbers()
    {
        Parse("A=1\r\nbad one\r\nB=2\r\nbad two\r\n", out var errors);
        Assert.Equal([".env:2", ".env:4"], errors.Select(e => e.Path));
    }
}
