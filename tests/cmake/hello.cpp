// The C++ side of the CMake package test: rigllama.hpp from the installed include directory,
// linked through rigllama::rigllama. Checks that the header and the library are the same
// version, that a failed call throws rigllama::Error with its status and message, and that a
// streamed reply is exactly what complete() returns for the same greedy request.
//
//   usage: hello_cpp MODEL.gguf
#include <iostream>
#include <string>

#include <rigllama.hpp>

static int failures = 0;

static void expect(bool ok, const std::string &what) {
    std::cout << (ok ? "ok    " : "FAIL  ") << what << "\n";
    if (!ok)
        failures++;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf\n";
        return 2;
    }
    const std::string header_version = std::to_string(RIGLLAMA_VERSION_MAJOR) + "." +
                                       std::to_string(RIGLLAMA_VERSION_MINOR) + "." +
                                       std::to_string(RIGLLAMA_VERSION_PATCH);
    expect(rigllama::version() == header_version,
           "the library (" + rigllama::version() + ") is the header's version (" + header_version + ")");

    try {
        rigllama::Engine::open("/nonexistent/model.gguf");
        expect(false, "a missing model throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_MODEL_LOAD_FAILED &&
                   std::string(e.what()).find("/nonexistent/model.gguf") != std::string::npos,
               std::string("a missing model throws MODEL_LOAD_FAILED naming it: ") + e.what());
    }

    try {
        auto engine = rigllama::Engine::open(argv[1]);
        rigllama::Request request("The three primary colors are");
        request.raw().max_tokens(16).temperature(0);
        std::string streamed;
        rigllama::Usage usage = engine.stream(request, [&](std::string_view piece) { streamed += piece; });
        std::cout << "[stream] " << request.c().prompt << streamed << "\n";
        expect(usage.completion_tokens > 0 && !streamed.empty(),
               "stream: " + std::to_string(usage.completion_tokens) + " tokens");
        std::string completed = engine.complete(request);
        expect(completed == streamed, "complete() returns what stream() delivered");
    } catch (const rigllama::Error &e) {
        expect(false, std::string("unexpected error: ") + e.what());
    }
    std::cout << (failures ? "FAILED" : "all passed") << "\n";
    return failures ? 1 : 0;
}
