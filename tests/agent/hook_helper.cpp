// A hook program for the agent tests.
//   hook_helper record DIR ARG…   write DIR/<pid>.argv (each argument, NUL
//                                 terminated) and DIR/<pid>.stdin, then print
//                                 "recorded N args" (goes to server.log)
//   hook_helper sleep SECONDS     sleep (a timeout must kill it)
//   hook_helper rewrite FILE      prepend "Comments: rewritten by hook" to FILE
//   hook_helper delete FILE       remove FILE (a filter dropping the message)
//   hook_helper fail              exit 3
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string mode = argv[1];
  if (mode == "record" && argc >= 3) {
    std::string base = std::string(argv[2]) + "/" + std::to_string(::getpid());
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    {
      std::ofstream s(base + ".stdin.tmp", std::ios::binary);
      s << in;
    }
    {
      std::ofstream a(base + ".argv.tmp", std::ios::binary);
      for (int i = 3; i < argc; ++i) a << argv[i] << '\0';
    }
    std::rename((base + ".stdin.tmp").c_str(), (base + ".stdin").c_str());
    std::rename((base + ".argv.tmp").c_str(), (base + ".argv").c_str());
    std::cout << "recorded " << (argc - 3) << " args" << std::endl;
    return 0;
  }
  if (mode == "sleep" && argc >= 3) {
    ::sleep(static_cast<unsigned>(std::atoi(argv[2])));
    return 0;
  }
  if (mode == "rewrite" && argc >= 3) {
    std::string text;
    {
      std::ifstream f(argv[2], std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      text = ss.str();
    }
    std::ofstream f(argv[2], std::ios::binary | std::ios::trunc);
    f << "Comments: rewritten by hook\r\n" << text;
    return 0;
  }
  if (mode == "delete" && argc >= 3) return ::unlink(argv[2]) == 0 ? 0 : 1;
  if (mode == "fail") {
    std::cerr << "failing on purpose" << std::endl;
    return 3;
  }
  return 2;
}
