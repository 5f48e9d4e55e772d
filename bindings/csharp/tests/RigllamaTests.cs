// NUnit tests of Rigllama.dll against a real model ($RIGLLAMA_MODEL; the tests that load it are
// ignored without it, saying how to run them). Built against the DLL in the package layout and
// run with MONO_PATH pointing there, so DllImport reaches the package's librigllama.so through
// Rigllama.dll.config. Tests that load a model run one at a time (NUnit 2 runs them in order).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using AOT;
using NUnit.Framework;
using Rigllama;

[TestFixture]
public class RigllamaTests
{
    static string ModelPath()
    {
        string model = Environment.GetEnvironmentVariable("RIGLLAMA_MODEL");
        if (string.IsNullOrEmpty(model))
            Assert.Ignore("RIGLLAMA_MODEL is not set: set it to a GGUF model file to run the tests that load one "
                          + "(in the rigllama repository, scripts/fetch-model fetches the default model and prints its path)");
        return model;
    }

    Engine shared;

    // One engine for the tests that can share it (loading takes a moment).
    Engine Shared()
    {
        if (shared == null) shared = new Engine(ModelPath());
        return shared;
    }

    [TestFixtureTearDown]
    public void CloseShared()
    {
        if (shared != null) shared.Dispose();
    }

    static Request Greedy(uint maxTokens)
    {
        var request = Engine.DefaultRequest();
        request.raw_prompt = 1;
        request.temperature = 0f;
        request.max_tokens = maxTokens;
        return request;
    }

    // Waits for the job's final event, collecting the text.
    static JobEvent UntilFinal(Job job, StringBuilder text)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            JobEvent ev = job.Poll(1000);
            if (ev.Kind == EventKind.Text && text != null) text.Append(ev.Text);
            if (ev.Final) return ev;
        }
        Assert.Fail("no final event within 60 s");
        return new JobEvent();
    }

    [Test]
    public void TheStructsMatchTheCLayout()
    {
        Assert.AreEqual("", Native.CheckLayout());
    }

    [Test]
    public void TheNativeLibraryComesFromThePackage()
    {
        string version = Native.Utf8ReadZ(Native.rigllama_version());
        StringAssert.IsMatch(@"^\d+\.\d+\.\d+", version);
        string loaded = null;
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
            if (line.Contains("librigllama")) { loaded = line.Substring(line.IndexOf('/')); break; }
        string expected = Environment.GetEnvironmentVariable("RIGLLAMA_EXPECT_LIBRARY");
        if (!string.IsNullOrEmpty(expected))
            Assert.AreEqual(Path.GetFullPath(expected), Path.GetFullPath(loaded));
        Assert.IsNotNull(loaded);
    }

    [Test]
    public void TheLibraryDefaults()
    {
        EngineOptions defaults = Engine.DefaultOptions();
        Assert.AreEqual(32, defaults.max_checkpoints);
        Assert.AreEqual(512UL << 20, defaults.max_checkpoint_bytes);
        Assert.AreEqual(IntPtr.Zero, defaults.mmproj_path);
        Assert.AreEqual((int)EngineThreadPriority.Normal, defaults.thread_priority);
        Assert.AreEqual(IntPtr.Zero, defaults.devices);   // llama.cpp's choice
    }

    [Test]
    public void JsonReadsWhatTheLibraryWrites()
    {
        var parsed = (Dictionary<string, object>)Json.Parse(
            " {\"a\": [1, -2, 3.5, 18446744073709551615], \"s\": \"q\\\"\\\\\\u00e9\\ud83d\\ude00\\n\", \"t\": true, \"n\": null, \"o\": {}, \"e\": []} ");
        var a = (List<object>)parsed["a"];
        Assert.AreEqual(1L, a[0]);
        Assert.AreEqual(-2L, a[1]);
        Assert.AreEqual(3.5, a[2]);
        Assert.AreEqual(ulong.MaxValue, a[3]);
        Assert.AreEqual("q\"\\\u00e9\U0001F600\n", parsed["s"]);
        Assert.AreEqual(true, parsed["t"]);
        Assert.IsNull(parsed["n"]);
        Assert.AreEqual(0, ((Dictionary<string, object>)parsed["o"]).Count);
        Assert.AreEqual(0, ((List<object>)parsed["e"]).Count);
        foreach (string bad in new[] { "", "{", "[1,]", "{\"a\" 1}", "\"open", "tru", "1 2" })
            Assert.Throws<FormatException>(() => Json.Parse(bad), bad);
    }

    [Test]
    public void TheDevicesOption()
    {
        Assert.IsNull(Engine.DevicesOption(null));                       // llama.cpp's choice
        Assert.AreEqual("none", Engine.DevicesOption(new string[0]));    // the CPU only
        Assert.AreEqual("CPU", Engine.DevicesOption(new[] { "CPU" }));
        Assert.AreEqual("Vulkan0,CUDA1", Engine.DevicesOption(new[] { "Vulkan0", "CUDA1" }));
    }

    [Test]
    public void DevicesAreListedBeforeAnyEngine()
    {
        Device[] devices = Engine.ListDevices();
        Assert.That(devices.Length, Is.GreaterThan(0));
        Assert.AreEqual("CPU", devices[0].Name);
        Assert.AreEqual("cpu", devices[0].Type);
        Assert.That(devices[0].MemoryTotal, Is.GreaterThan(1UL << 30));
        Assert.That(devices[0].MemoryFree, Is.GreaterThan(0UL) & Is.LessThanOrEqualTo(devices[0].MemoryTotal));
        Assert.IsNotNull(devices[0].Description);
        foreach (Device device in devices)
            CollectionAssert.Contains(new[] { "cpu", "gpu", "igpu", "accel" }, device.Type, device.Name);
    }

    // This library is the default build: its CPU code is built in, so there are no modules to
    // load (SetBackendDir is refused naming the dynamic-backends feature) and describe says so.
    [Test]
    public void SetBackendDirIsRefusedInTheStaticBuild()
    {
        var e = Assert.Throws<RigllamaException>(() => Engine.SetBackendDir("/tmp"));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("dynamic-backends", e.Message);
        Assert.AreEqual(Status.NullArgument, Assert.Throws<RigllamaException>(() => Engine.SetBackendDir(null)).Status);
    }

    [Test]
    public void TheCpuBackendIsBuiltIn()
    {
        Assert.AreEqual("built-in", Shared().CpuBackendVariant());
        StringAssert.Contains("\"cpu_backend\":{\"variant\":\"built-in\"", Shared().Describe());
    }

    static void Within10Percent(ulong planned, ulong allocated, string what)
    {
        Assert.That(allocated, Is.GreaterThan(0UL), what);
        Assert.That(Math.Abs((double)planned - allocated), Is.LessThanOrEqualTo(0.1 * allocated),
                    what + ": estimated " + planned + ", allocated " + allocated);
    }

    // The shared engine has the default options: the estimate for them, without loading the
    // weights, plans what it allocated; half the context plans a smaller KV cache.
    [Test]
    public void TheEstimatePlansWhatTheEngineAllocates()
    {
        MemoryEstimate planned = Engine.Estimate(ModelPath(), Engine.DefaultOptions());
        Assert.AreEqual(4096u, planned.NCtx);
        Assert.AreEqual("CPU", planned.Devices[0].Name);
        ulong model = 0, kv = 0, compute = 0;
        foreach (DeviceUse device in planned.Devices)
        {
            model += device.Memory.ModelBytes;
            kv += device.Memory.KvCacheBytes;
            compute += device.Memory.ComputeBytes;
        }
        Assert.AreEqual(new[] { model, kv, compute },
                        new[] { planned.Total.ModelBytes, planned.Total.KvCacheBytes, planned.Total.ComputeBytes });
        MemoryUse allocated = Shared().Memory();
        Within10Percent(planned.Total.ModelBytes, allocated.ModelBytes, "model_bytes");
        Within10Percent(planned.Total.KvCacheBytes, allocated.KvCacheBytes, "kv_cache_bytes");
        EngineOptions half = Engine.DefaultOptions();
        half.n_ctx = 2048;
        MemoryEstimate smaller = Engine.Estimate(ModelPath(), half);
        Assert.AreEqual(2048u, smaller.NCtx);
        Assert.That(smaller.Total.KvCacheBytes, Is.LessThan(planned.Total.KvCacheBytes));
    }

    [Test]
    public void TheEstimateRefusesFit()
    {
        EngineOptions options = Engine.DefaultOptions();
        options.fit = 1;
        var e = Assert.Throws<RigllamaException>(() => Engine.Estimate(ModelPath(), options));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("fit", e.Message);
    }

    [Test]
    public void AnUnknownDeviceIsRefusedNamingItAndThoseThereAre()
    {
        var e = Assert.Throws<RigllamaException>(
            () => new Engine(ModelPath(), Engine.DefaultOptions(), devices: new[] { "NoSuchGPU0" }).Dispose());
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("NoSuchGPU0", e.Message);
        StringAssert.Contains("CPU", e.Message);
    }

    // devices {"CPU"}: the model on the CPU, as Devices() reports it, no GPU fallback, and the
    // estimate for the same options within 10% of what it allocated.
    [Test]
    public void TheCpuAsTheDevice()
    {
        string[] cpu = { "CPU" };
        MemoryEstimate planned = Engine.Estimate(ModelPath(), Engine.DefaultOptions(), devices: cpu);
        using (var engine = new Engine(ModelPath(), Engine.DefaultOptions(), devices: cpu))
        {
            DeviceUse[] devices = engine.Devices();
            Assert.AreEqual("CPU", devices[0].Name);
            Assert.AreEqual("cpu", devices[0].Type);
            Assert.IsNull(engine.GpuFallback());
            StringAssert.Contains("\"gpu_fallback\":null", engine.Describe());
            MemoryUse allocated = engine.Memory();
            Within10Percent(planned.Total.ModelBytes, allocated.ModelBytes, "model_bytes");
            Within10Percent(planned.Total.KvCacheBytes, allocated.KvCacheBytes, "kv_cache_bytes");
            Usage usage;
            Assert.IsNotEmpty(engine.Complete("Once upon a time", Greedy(4), out usage));
        }
    }

    [Test]
    public void AMissingModelThrowsWithItsPathIntact()
    {
        const string missing = "/nonexistent/modèle-ü.gguf";   // UTF-8 in, UTF-8 back in the message
        var e = Assert.Throws<RigllamaException>(() => new Engine(missing));
        Assert.AreEqual(Status.ModelLoadFailed, e.Status);
        StringAssert.Contains(missing, e.Message);
    }

    [TestCase(7, null, "thread_priority 7")]                      // the field reaches C at its offset
    [TestCase(0, "/nonexistent/mmproj.gguf", "mtmd")]             // this library has no vision
    public void BadOptionsAreRefusedNamingTheValue(int threadPriority, string mmproj, string named)
    {
        EngineOptions options = Engine.DefaultOptions();
        options.thread_priority = threadPriority;
        var e = Assert.Throws<RigllamaException>(() => new Engine(ModelPath(), options, mmproj).Dispose());
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains(named, e.Message);
    }

    // The Unity pattern: a static [MonoPInvokeCallback] method whose delegate lives in a static
    // field, with a GCHandle as user_data.
    static readonly ProgressCallback ProgressDelegate = OnProgress;

    [MonoPInvokeCallback(typeof(ProgressCallback))]
    static int OnProgress(IntPtr userData, float progress)
    {
        ((List<float>)GCHandle.FromIntPtr(userData).Target).Add(progress);
        return 0;   // keep loading
    }

    [Test]
    public void TheProgressCallbackRunsWhileLoading()
    {
        var progress = new List<float>();
        GCHandle handle = GCHandle.Alloc(progress);
        try
        {
            EngineOptions options = Engine.DefaultOptions();
            options.on_progress = Marshal.GetFunctionPointerForDelegate(ProgressDelegate);
            options.progress_user_data = GCHandle.ToIntPtr(handle);
            using (new Engine(ModelPath(), options)) { }
        }
        finally
        {
            handle.Free();
        }
        Assert.IsTrue(progress.Count > 0 && progress[progress.Count - 1] >= 0.99f, "progress: " + progress.Count + " calls");
    }

    [Test]
    public void AJobPolledOncePerFrameDeliversWhatCompleteReturns()
    {
        Engine engine = Shared();
        Usage completed;
        string expected = engine.Complete("The three primary colors are", Greedy(16), out completed);
        var text = new StringBuilder();
        int frames = 0;
        using (Job job = engine.Submit("The three primary colors are", Greedy(16)))
        {
            JobEvent ev;
            do
            {
                frames++;
                do { ev = job.Poll(0); if (ev.Kind == EventKind.Text) text.Append(ev.Text); }   // never blocks
                while (ev.Kind == EventKind.Text);
                if (!ev.Final) System.Threading.Thread.Sleep(16);                                 // the rest of the frame
            }
            while (!ev.Final && frames < 60 * 60);
            Assert.AreEqual(EventKind.Done, ev.Kind, ev.Message);
            Usage usage = job.Usage();
            Assert.IsTrue(usage.completion_tokens > 0 && usage.completion_tokens <= 16);
            Assert.AreEqual(0, usage.image_tokens);
        }
        Assert.AreEqual(expected, text.ToString());
        Assert.IsTrue(completed.finish_reason == (int)FinishReason.Length || completed.finish_reason == (int)FinishReason.Stop);
    }

    [Test]
    public void ACancelledJobEndsWithErrorCancelledAndTheEngineGoesOn()
    {
        Engine engine = Shared();
        using (Job job = engine.Submit("Once upon a time", Greedy(256)))
        {
            var clock = Stopwatch.StartNew();
            JobEvent ev;
            do ev = job.Poll(1000); while (ev.Kind == EventKind.None && clock.Elapsed < TimeSpan.FromSeconds(60));
            Assert.AreEqual(EventKind.Text, ev.Kind);
            job.Cancel();
            ev = UntilFinal(job, null);
            Assert.AreEqual(EventKind.Error, ev.Kind);
            Assert.AreEqual(Status.Cancelled, ev.Status, ev.Message);
            Assert.IsTrue(job.Usage().completion_tokens < 256);
        }
        Usage usage;
        Assert.IsNotEmpty(engine.Complete("Two plus two is", Greedy(4), out usage));
    }

    [Test]
    public void DisposingTwiceIsHarmless()
    {
        Job job = Shared().Submit("Once upon a time", Greedy(4));
        job.Dispose();   // cancels it
        job.Dispose();
        Assert.AreEqual(IntPtr.Zero, job.Handle);
    }

    [Test]
    public void AnEmbeddingIsNormalised()
    {
        IntPtr sentence = Native.Utf8Alloc("The cat sat on the mat.");
        try
        {
            UIntPtr dims;
            Native.Check(Native.rigllama_engine_embed(Shared().Handle, sentence, null, UIntPtr.Zero, out dims));
            var vector = new float[(int)dims];
            Native.Check(Native.rigllama_engine_embed(Shared().Handle, sentence, vector, dims, out dims));
            double norm = 0;
            foreach (float x in vector) norm += (double)x * x;
            Assert.IsTrue(vector.Length > 0);
            Assert.AreEqual(1.0, Math.Sqrt(norm), 1e-3);
        }
        finally
        {
            Marshal.FreeHGlobal(sentence);
        }
    }

    const string WeatherTools =
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather in a city\"," +
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";

    [Test]
    public void AGrammarDecidesTheChatReply()
    {
        Request request = Engine.DefaultRequest();
        request.temperature = 0f;
        request.max_tokens = 8;
        request.reasoning = (int)Reasoning.Off;
        request.prompt = Native.Utf8Alloc("Is the sky blue?");
        request.grammar = Native.Utf8Alloc("root ::= (\"yes\" | \"no\") \".\"");
        var usage = new Usage();
        Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
        try
        {
            IntPtr message;
            Native.Check(Native.rigllama_engine_chat(Shared().Handle, ref request, out message, ref usage));
            var reply = (Dictionary<string, object>)MiniJson.Parse(Native.Utf8ReadZ(message));
            Native.rigllama_string_free(message);
            Assert.AreEqual("assistant", reply["role"]);
            Assert.That(reply["content"], Is.EqualTo("yes.").Or.EqualTo("no."));
            Assert.AreEqual((int)FinishReason.Stop, usage.finish_reason);
        }
        finally
        {
            Marshal.FreeHGlobal(request.grammar);
            Marshal.FreeHGlobal(request.prompt);
        }
    }

    [Test]
    public void ToolsAreRenderedAndAGrammarBesideRequiredToolsIsRefused()
    {
        Request ask = Engine.DefaultRequest();
        ask.prompt = Native.Utf8Alloc("What is the weather in Paris?");
        ask.tools_json = Native.Utf8Alloc(WeatherTools);
        ask.tool_choice = (int)ToolChoice.Required;
        try
        {
            IntPtr prompt;
            Native.Check(Native.rigllama_engine_apply_template(Shared().Handle, ref ask, out prompt));
            string text = Native.Utf8ReadZ(prompt);
            Native.rigllama_string_free(prompt);
            StringAssert.Contains("get_weather", text);

            ask.grammar = Native.Utf8Alloc("root ::= \"a\"");
            var usage = new Usage();
            Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
            IntPtr refused;
            int status = Native.rigllama_engine_chat(Shared().Handle, ref ask, out refused, ref usage);
            Assert.AreEqual((int)Status.InvalidArgument, status, Native.Utf8ReadZ(Native.rigllama_last_error()));
            Assert.AreEqual(IntPtr.Zero, refused);   // outputs are NULL on failure
        }
        finally
        {
            Marshal.FreeHGlobal(ask.grammar);
            Marshal.FreeHGlobal(ask.tools_json);
            Marshal.FreeHGlobal(ask.prompt);
        }
    }

    [Test]
    public void LogprobsComeAsJsonAndTheGreedyTokenIsTheLikeliest()
    {
        Request request = Greedy(8);
        request.n_logprobs = 3;
        var entries = new List<object>();
        using (Job job = Shared().Submit("The capital of France is", request))
        {
            var clock = Stopwatch.StartNew();
            JobEvent ev;
            do
            {
                ev = job.Poll(1000);
                if (ev.Kind == EventKind.Logprobs) entries.AddRange((List<object>)MiniJson.Parse(ev.Text));
            }
            while (!ev.Final && clock.Elapsed < TimeSpan.FromSeconds(60));
            Assert.AreEqual(EventKind.Done, ev.Kind, ev.Message);
        }
        Assert.IsNotEmpty(entries);
        foreach (Dictionary<string, object> entry in entries)
        {
            var top = (List<object>)entry["top_logprobs"];
            Assert.IsTrue((double)entry["logprob"] <= 0 && top.Count >= 1 && top.Count <= 3);
            double previous = 0;
            foreach (Dictionary<string, object> alternative in top)
            {
                Assert.IsTrue((double)alternative["logprob"] <= previous, "alternatives in descending order");
                previous = (double)alternative["logprob"];
            }
            var first = (Dictionary<string, object>)top[0];
            Assert.AreEqual(first["id"], entry["id"]);
            Assert.AreEqual(first["token"], entry["token"]);
        }
    }

    [TestCase(0u, false)]
    [TestCase(8u, true)]
    public void PromptLookupGuessesOnlyWithDraftMax(uint draftMax, bool guesses)
    {
        Request request = Greedy(48);
        request.draft_max = draftMax;
        Usage usage;
        Shared().Complete("Repeat exactly: the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog.",
                          request, out usage);
        Assert.AreEqual(guesses, usage.drafted_tokens > 0, "drafted " + usage.drafted_tokens);
        Assert.IsTrue(usage.accepted_tokens <= usage.drafted_tokens);
    }

    [Test]
    public void TwoJobsRunAtOnceOnAnNSeq2Engine()
    {
        EngineOptions options = Engine.DefaultOptions();
        options.n_seq = 2;
        using (var engine = new Engine(ModelPath(), options))
        {
            engine.Pause();   // both start together on resume
            Request npc = Greedy(12), player = Greedy(12);
            player.priority = 10;
            using (Job first = engine.Submit("The blacksmith told a long story about", npc))
            using (Job second = engine.Submit("The guard pointed to the exit and said", player))
            {
                engine.Resume();
                var jobs = new[] { first, second };
                var texts = new int[2];
                var final = new JobEvent?[2];
                bool pausedWhileBothRan = false;
                var clock = Stopwatch.StartNew();
                while ((final[0] == null || final[1] == null) && clock.Elapsed < TimeSpan.FromSeconds(60))
                {
                    for (int i = 0; i < 2; i++)
                    {
                        if (final[i] != null) continue;
                        JobEvent ev = jobs[i].Poll(0);
                        if (ev.Kind == EventKind.Text) texts[i]++;
                        else if (ev.Final) final[i] = ev;
                    }
                    if (!pausedWhileBothRan && texts[0] > 0 && texts[1] > 0 && final[0] == null && final[1] == null)
                    {
                        engine.Pause();   // a level load holds both
                        engine.Resume();
                        pausedWhileBothRan = true;
                    }
                    System.Threading.Thread.Sleep(1);
                }
                Assert.IsTrue(pausedWhileBothRan, "both ran at once: " + texts[0] + " and " + texts[1] + " pieces");
                for (int i = 0; i < 2; i++)
                {
                    Assert.AreEqual(EventKind.Done, final[i].Value.Kind, final[i].Value.Message);
                    Assert.AreEqual(12, jobs[i].Usage().completion_tokens);
                }
            }
        }
    }

    [TestCase("Hello, world!")]
    [TestCase("Übergrößenträger naïve café")]
    [TestCase("日本語のテキスト")]
    [TestCase("emoji 🦀🚀")]
    [TestCase("Привет, мир! مرحبا بالعالم")]
    [TestCase("<start_of_turn>user\nHi<end_of_turn>\n")]
    public void TextToIdsToTextIsExactAndCountsAsARawPrompt(string text)
    {
        int[] ids = Shared().Tokenize(text);
        Assert.IsNotEmpty(ids);
        Assert.AreEqual(text, Shared().Detokenize(ids));
        Assert.AreEqual((uint)ids.Length, Shared().CountTokens(text, Greedy(1)));
    }

    [Test]
    public void TokenizeGrowsItsBufferForTextThatMakesManyIds()
    {
        string digits = new StringBuilder().Insert(0, "0123456789", 20).ToString();   // one id per digit here
        int[] ids = Shared().Tokenize(digits);
        Assert.Greater(ids.Length, digits.Length / 2 + 8, "the first buffer was enough: nothing grew");
        Assert.AreEqual(digits, Shared().Detokenize(ids));
        Assert.AreEqual((uint)ids.Length, Shared().CountTokens(digits, Greedy(1)));
    }

    [Test]
    public void TokenizeFlags()
    {
        Assert.AreEqual(1, Shared().Tokenize("<start_of_turn>", Rigllama.TokenizeFlags.ParseSpecial).Length);
        int[] plain = Shared().Tokenize("<start_of_turn>", Rigllama.TokenizeFlags.None);
        Assert.Greater(plain.Length, 1);
        Assert.AreEqual("<start_of_turn>", Shared().Detokenize(plain, Rigllama.TokenizeFlags.None));
        Assert.AreEqual("", Shared().Detokenize(new int[0]));
        var e = Assert.Throws<RigllamaException>(() => Shared().Tokenize("a\0b"));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
    }

    [TestCase(10000000)]
    [TestCase(-3)]
    public void AnIdOutsideTheVocabularyIsRefusedNamingIt(int bad)
    {
        var e = Assert.Throws<RigllamaException>(() => Shared().Detokenize(new[] { 2, bad }));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("tokens[1] = " + bad, e.Message);
    }

    [Test]
    public void PromptTokensGiveTheReplyTheRawTextGives()
    {
        Engine engine = Shared();
        const string prompt = "The old lighthouse keeper looked out at the storm and";
        // Each from an empty cache: a prompt whose first tokens are cached evaluates only its last
        // one, whose logits round differently from a batch's, and this prompt has a near tie.
        engine.Reset();
        Usage usage;
        string expected = engine.Complete(prompt, Greedy(16), out usage);
        int[] ids = engine.Tokenize(prompt);
        engine.Reset();
        Assert.AreEqual(expected, engine.CompleteTokens(ids, Greedy(16), out usage));
        Assert.AreEqual((uint)ids.Length, usage.prompt_tokens);
        engine.Reset();
        var text = new StringBuilder();
        using (Job job = engine.SubmitTokens(ids, Greedy(16)))
            Assert.AreEqual(EventKind.Done, UntilFinal(job, text).Kind);
        Assert.AreEqual(expected, text.ToString(), "as a job");

        var e = Assert.Throws<RigllamaException>(() => engine.CompleteTokens(new[] { ids[0], 10000000 }, Greedy(1), out usage));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("prompt_tokens[1] = 10000000", e.Message);
        e = Assert.Throws<RigllamaException>(() => engine.CompleteTokens(new int[0], Greedy(1), out usage));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
    }

    const string InfillPrefix = "def add(a, b):\n    ";
    const string InfillSuffix = "\n\nprint(add(1, 2))\n";

    // $RIGLLAMA_FIM_MODEL: the model with fill-in-the-middle tokens (tests/csharp/run makes it
    // with scripts/make-fim-model).
    static string FimModelPath()
    {
        ModelPath();
        string path = Environment.GetEnvironmentVariable("RIGLLAMA_FIM_MODEL");
        if (string.IsNullOrEmpty(path))
            Assert.Ignore("RIGLLAMA_FIM_MODEL is not set: set it to a model with FIM tokens "
                          + "(in the rigllama repository, scripts/make-fim-model MODEL DEST makes one)");
        return path;
    }

    // llama-server's /infill layout on the FIM model (scripts/make-fim-model gives it FIM_PRE..
    // FIM_SEP as ids 6..10, and FIM_REP/FIM_SEP add a repository header):
    // [FIM_REP]myproject\n[FIM_SEP]filename\n[BOS][FIM_PRE]prefix[FIM_SUF]suffix[FIM_MID].
    static int[] InfillLayout(Engine engine, string prefix, string suffix)
    {
        var ids = new List<int> { 9 };
        ids.AddRange(engine.Tokenize("myproject\n", Rigllama.TokenizeFlags.None));
        ids.Add(10);
        ids.AddRange(engine.Tokenize("filename\n", Rigllama.TokenizeFlags.None));
        ids.AddRange(new[] { 2, 6 });
        ids.AddRange(engine.Tokenize(prefix, Rigllama.TokenizeFlags.None));
        ids.Add(7);
        ids.AddRange(engine.Tokenize(suffix, Rigllama.TokenizeFlags.None));
        ids.Add(8);
        return ids.ToArray();
    }

    [Test]
    public void ASuffixIsRefusedWithoutFimTokens()
    {
        Usage usage;
        var e = Assert.Throws<RigllamaException>(() => Shared().CompleteInfill(InfillPrefix, InfillSuffix, Greedy(8), out usage));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("fill-in-the-middle tokens", e.Message);
    }

    [Test]
    public void FillInTheMiddleFollowsTheInfillLayout()
    {
        EngineOptions options = Engine.DefaultOptions();
        options.n_ctx = 1024;
        using (var engine = new Engine(FimModelPath(), options))
        {
            int[] layout = InfillLayout(engine, InfillPrefix, InfillSuffix);
            Assert.AreEqual((uint)layout.Length, engine.CountInfillTokens(InfillPrefix, InfillSuffix, Greedy(8)));
            Request request = Greedy(8);
            request.prompt = Native.Utf8Alloc(InfillPrefix);
            request.suffix = Native.Utf8Alloc(InfillSuffix);
            try
            {
                IntPtr shown;
                Native.Check(Native.rigllama_engine_apply_template(engine.Handle, ref request, out shown));
                string text = Native.Utf8ReadZ(shown);
                Native.rigllama_string_free(shown);
                Assert.AreEqual(layout, engine.Tokenize(text, Rigllama.TokenizeFlags.ParseSpecial), text);
            }
            finally
            {
                Marshal.FreeHGlobal(request.suffix);
                Marshal.FreeHGlobal(request.prompt);
            }
            // Either side may be empty.
            Assert.AreEqual((uint)InfillLayout(engine, "", InfillSuffix).Length, engine.CountInfillTokens("", InfillSuffix, Greedy(8)));
            Assert.AreEqual((uint)InfillLayout(engine, InfillPrefix, "").Length, engine.CountInfillTokens(InfillPrefix, "", Greedy(8)));
            Request notRaw = Greedy(8);
            notRaw.raw_prompt = 0;
            var e = Assert.Throws<RigllamaException>(() => engine.CountInfillTokens(InfillPrefix, InfillSuffix, notRaw));
            Assert.AreEqual(Status.InvalidArgument, e.Status);
            StringAssert.Contains("raw_prompt 1", e.Message);

            engine.Reset();
            Usage usage;
            string middle = engine.CompleteInfill(InfillPrefix, InfillSuffix, Greedy(8), out usage);
            Assert.IsNotEmpty(middle);
            Assert.AreEqual((uint)layout.Length, usage.prompt_tokens);
            Assert.AreEqual(0u, usage.dropped_tokens);
            engine.Reset();
            var jobText = new StringBuilder();
            using (Job job = engine.SubmitInfill(InfillPrefix, InfillSuffix, Greedy(8)))
                Assert.AreEqual(EventKind.Done, UntilFinal(job, jobText).Kind);
            Assert.AreEqual(middle, jobText.ToString(), "as a job");
        }
    }

    [Test]
    public void RerankRefusesAChatModelTakesNoDocumentsAndScoresEachOnAReranker()
    {
        string[] documents = { "A cat is a small furry animal that purrs.", "Granite is a hard igneous rock.",
                               "Cats sleep for most of the day." };
        var e = Assert.Throws<RigllamaException>(() => Shared().Rerank("what is a cat?", documents));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("not a reranker", e.Message);
        Assert.AreEqual(new float[0], Shared().Rerank("what is a cat?", new string[0]));
        Assert.AreEqual(new float[0], Shared().Rerank("what is a cat?", null));

        string path = Environment.GetEnvironmentVariable("RIGLLAMA_RERANK_MODEL");
        if (string.IsNullOrEmpty(path))
        {
            Console.WriteLine("RIGLLAMA_RERANK_MODEL is not set: the scores of a reranker are not checked");
            return;
        }
        EngineOptions options = Engine.DefaultOptions();
        options.n_ctx = 1024;
        using (var reranker = new Engine(path, options))
        {
            float[] scores = reranker.Rerank("what is a cat?", documents);
            Assert.AreEqual(documents.Length, scores.Length);
            foreach (float score in scores)
                Assert.IsFalse(float.IsNaN(score) || float.IsInfinity(score), "a score that is not finite: " + score);
            var withNull = Assert.Throws<RigllamaException>(() => reranker.Rerank("q", new[] { "fine", null }));
            Assert.AreEqual(Status.NullArgument, withNull.Status);
            StringAssert.Contains("documents[1]", withNull.Message);
        }
    }

    // Each from an empty cache, so the runs compare.
    static string CompleteFresh(Engine engine, string prompt, Request request)
    {
        engine.Reset();
        Usage usage;
        return engine.Complete(prompt, request, out usage);
    }

    [Test]
    public void AdaptivePRepeatsASeededReplyAndChangesIt()
    {
        Request seeded = Greedy(32);
        Assert.Less(seeded.adaptive_target, 0f, "off by default");
        Assert.AreEqual(0.9f, seeded.adaptive_decay, 1e-6f);
        seeded.temperature = 1f;
        seeded.top_k = 0;
        seeded.top_p = 1f;
        seeded.min_p = 0f;
        seeded.seed = 1234;
        Engine engine = Shared();
        string plain = CompleteFresh(engine, "Once upon a time", seeded);
        seeded.adaptive_target = 0.3f;
        string first = CompleteFresh(engine, "Once upon a time", seeded);
        string again = CompleteFresh(engine, "Once upon a time", seeded);
        Assert.AreEqual(first, again, "adaptive_target 0.3 repeats a seeded reply");
        Assert.AreNotEqual(plain, first, "adaptive_target 0.3 changes it");
        seeded.adaptive_target = 1.5f;
        Usage usage;
        var e = Assert.Throws<RigllamaException>(() => engine.Complete("Once upon a time", seeded, out usage));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("adaptive_target", e.Message);
    }

    // The default model's template has no thinking block: a budget has nothing to limit there.
    [Test]
    public void ReasoningBudgetIsUnlimitedByDefaultAndLeavesAPlainTemplateAlone()
    {
        Request chat = Engine.DefaultRequest();   // the template applied
        Assert.AreEqual(-1, chat.reasoning_budget, "unlimited by default");
        chat.temperature = 0f;
        chat.max_tokens = 6;
        Engine engine = Shared();
        Usage plainUsage, usage;
        engine.Reset();
        string plain = engine.Complete("Name a colour.", chat, out plainUsage);
        chat.reasoning_budget = 8;
        engine.Reset();
        string budgeted = engine.Complete("Name a colour.", chat, out usage);
        Assert.IsNotEmpty(budgeted);
        Assert.AreEqual(plain, budgeted, "reasoning_budget 8 without a thinking block: the same greedy reply");
        Assert.AreEqual(plainUsage.completion_tokens, usage.completion_tokens);
        Assert.AreEqual(plainUsage.finish_reason, usage.finish_reason);
        chat.reasoning_budget = -2;
        var e = Assert.Throws<RigllamaException>(() => engine.Complete("Name a colour.", chat, out usage));
        Assert.AreEqual(Status.InvalidArgument, e.Status);
        StringAssert.Contains("reasoning_budget -2", e.Message);
    }

    // Per-request LoRA on the shared engine, with $RIGLLAMA_LORA_DIR's adapter added at
    // engine-wide scale 0: the adapter at 1 for one request (a LoraSet) changes the greedy text
    // and is exactly the text scale 1 engine-wide gives a plain request; with it at 1 engine-wide,
    // an empty LoraSet gives the base text and LoraSet.EngineWide the adapted one again; an
    // unknown id, a scale of 1000, lora_scales NULL and lora_ids NULL with n_loras 1 are refused
    // naming them. Each greedy run from an empty cache (greedy text repeats only from the same
    // cache state). The adapter is removed after (snapshots are refused while one is applied).
    [Test]
    public void APerRequestLoraSetReplacesTheEngineWideAdapters()
    {
        ModelPath();
        string dir = Environment.GetEnvironmentVariable("RIGLLAMA_LORA_DIR");
        if (string.IsNullOrEmpty(dir))
            Assert.Ignore("RIGLLAMA_LORA_DIR is not set: set it to a directory of LoRA adapters for the model "
                          + "(in the rigllama repository, scripts/make-lora-adapter MODEL DIR makes them)");
        const string prompt = "The capital of France is";
        Request request = Greedy(16);
        Assert.AreEqual(IntPtr.Zero, request.lora_ids, "DefaultRequest: lora_ids NULL, the engine-wide adapters");
        Assert.AreEqual(IntPtr.Zero, request.lora_scales);
        Assert.AreEqual(UIntPtr.Zero, request.n_loras);
        Engine engine = Shared();
        uint id = engine.AddLora(Path.Combine(dir, "gemma3-270m-lora.gguf"), 0f);
        try
        {
            string baseText = CompleteFresh(engine, prompt, request);
            string adapted;
            using (var own = new LoraSet(new LoraScale(id, 1f)))
            {
                Request r = request;
                own.Apply(ref r);
                Assert.AreEqual((UIntPtr)1, r.n_loras);
                Assert.AreEqual((int)id, Marshal.ReadInt32(r.lora_ids));
                adapted = CompleteFresh(engine, prompt, r);
            }
            Assert.AreNotEqual(baseText, adapted, "the adapter at 1 for one request changes the text");
            engine.SetLoraScale(id, 1f);
            Assert.AreEqual(adapted, CompleteFresh(engine, prompt, request), "scale 1 engine-wide: the per-request text");
            using (var none = new LoraSet())
            {
                Request r = request;
                none.Apply(ref r);
                Assert.AreNotEqual(IntPtr.Zero, r.lora_ids, "an empty set is set");
                Assert.AreEqual(UIntPtr.Zero, r.n_loras);
                Assert.AreEqual(baseText, CompleteFresh(engine, prompt, r), "no adapter at all: the base text");
                LoraSet.EngineWide(ref r);
                Assert.AreEqual(adapted, CompleteFresh(engine, prompt, r), "EngineWide: the engine-wide adapter again");
            }
            using (var unknown = new LoraSet(new LoraScale(77, 1f)))
            using (var tooBig = new LoraSet(new LoraScale(id, 1000f)))
            {
                Request r = request;
                unknown.Apply(ref r);
                AssertRefused(engine, prompt, r, Status.InvalidArgument, "lora_ids[0] = 77");
                tooBig.Apply(ref r);
                AssertRefused(engine, prompt, r, Status.InvalidArgument, "lora_scales[0]");
                r.lora_scales = IntPtr.Zero;
                AssertRefused(engine, prompt, r, Status.NullArgument, "lora_scales");
                r.lora_ids = IntPtr.Zero;
                AssertRefused(engine, prompt, r, Status.InvalidArgument, "lora_ids is NULL");
            }
        }
        finally
        {
            engine.RemoveLora(id);
        }
    }

    static void AssertRefused(Engine engine, string prompt, Request request, Status status, string named)
    {
        Usage usage;
        var e = Assert.Throws<RigllamaException>(() => engine.Complete(prompt, request, out usage));
        Assert.AreEqual(status, e.Status, e.Message);
        StringAssert.Contains(named, e.Message);
    }

    [Test]
    public void AControlVectorSteersTheModelUntilCleared()
    {
        string model = ModelPath();
        string dir = Environment.GetEnvironmentVariable("RIGLLAMA_CONTROL_VECTOR_DIR");
        if (string.IsNullOrEmpty(dir))
            Assert.Ignore("RIGLLAMA_CONTROL_VECTOR_DIR is not set: set it to a directory of control vectors for the model "
                          + "(in the rigllama repository, scripts/make-control-vector MODEL DIR makes them)");
        string vector = Path.Combine(dir, "control-vector-random.gguf");
        EngineOptions options = Engine.DefaultOptions();
        options.n_ctx = 1024;
        using (var engine = new Engine(model, options))
        {
            // Each greedy run from an empty cache: a cached prefix can round differently.
            string baseText = CompleteFresh(engine, "The lighthouse keeper", Greedy(16));
            engine.SetControlVector(vector, 0f);
            Assert.AreEqual(baseText, CompleteFresh(engine, "The lighthouse keeper", Greedy(16)), "strength 0: the base model");
            engine.SetControlVector(vector, 1f);
            Assert.AreNotEqual(baseText, CompleteFresh(engine, "The lighthouse keeper", Greedy(16)), "strength 1 changes the text");
            var e = Assert.Throws<RigllamaException>(() => engine.SetControlVector(Path.Combine(dir, "control-vector-wrong-width.gguf")));
            Assert.AreEqual(Status.InvalidArgument, e.Status);
            StringAssert.Contains("640 wide", e.Message);
            e = Assert.Throws<RigllamaException>(() => engine.SetControlVector(vector, 1f, 3, 99));
            Assert.AreEqual(Status.InvalidArgument, e.Status);
            StringAssert.Contains("layer range 3..99", e.Message);
            engine.ClearControlVector();
            Assert.AreEqual(baseText, CompleteFresh(engine, "The lighthouse keeper", Greedy(16)), "cleared: the base model again");
        }
    }
}

// The smallest JSON reader the checks need (Mono has no JSON parser in its default references):
// objects become Dictionary<string, object>, arrays List<object>, numbers double, strings
// string, true and false bool, null null. Malformed text throws FormatException.
static class MiniJson
{
    public static object Parse(string text)
    {
        int i = 0;
        object value = Value(text, ref i);
        SkipSpace(text, ref i);
        if (i != text.Length) throw new FormatException("text after the value at " + i);
        return value;
    }

    static void SkipSpace(string s, ref int i) { while (i < s.Length && " \t\r\n".IndexOf(s[i]) >= 0) i++; }

    static char Take(string s, ref int i)
    {
        if (i >= s.Length) throw new FormatException("unexpected end of the JSON text");
        return s[i++];
    }

    static object Value(string s, ref int i)
    {
        SkipSpace(s, ref i);
        char c = Take(s, ref i);
        if (c == '"') return Str(s, ref i);
        if (c == '{' || c == '[')
        {
            char close = c == '{' ? '}' : ']';
            var obj = new Dictionary<string, object>();
            var list = new List<object>();
            SkipSpace(s, ref i);
            if (i < s.Length && s[i] == close) i++;
            else
                do
                {
                    if (close == '}')
                    {
                        SkipSpace(s, ref i);
                        if (Take(s, ref i) != '"') throw new FormatException("expected a key at " + (i - 1));
                        string key = Str(s, ref i);
                        SkipSpace(s, ref i);
                        if (Take(s, ref i) != ':') throw new FormatException("expected ':' at " + (i - 1));
                        obj[key] = Value(s, ref i);
                    }
                    else
                        list.Add(Value(s, ref i));
                    SkipSpace(s, ref i);
                    c = Take(s, ref i);
                    if (c != ',' && c != close) throw new FormatException("expected ',' or '" + close + "' at " + (i - 1));
                }
                while (c == ',');
            return close == '}' ? (object)obj : list;
        }
        int start = --i;   // true, false, null or a number
        while (i < s.Length && "+-.0123456789eEtruefalsn".IndexOf(s[i]) >= 0) i++;
        string word = s.Substring(start, i - start);
        if (word == "true" || word == "false") return word == "true";
        if (word == "null") return null;
        return double.Parse(word, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    // A string's characters after its opening quote, through the closing one.
    static string Str(string s, ref int i)
    {
        var sb = new StringBuilder();
        while (true)
        {
            char c = Take(s, ref i);
            if (c == '"') return sb.ToString();
            if (c != '\\') { sb.Append(c); continue; }
            c = Take(s, ref i);
            int escape = "\"\\/bfnrt".IndexOf(c);
            if (escape >= 0)
                sb.Append("\"\\/\b\f\n\r\t"[escape]);
            else if (c == 'u' && i + 4 <= s.Length)
            {
                sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
                i += 4;
            }
            else
                throw new FormatException("bad escape at " + (i - 1));
        }
    }
}
