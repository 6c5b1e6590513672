// Line input for `coldstream chat`: libedit (editing, history) on a terminal, plain reads from a
// pipe or file otherwise. Ctrl-C while reading returns kInterrupted with what was typed so far.
//
// Thread-safety: used by the REPL's thread only; interrupt() is async-signal-safe.
#pragma once

#include <memory>
#include <string>

namespace cs::cli {

class LineInput {
 public:
  enum class Status { kLine, kEof, kInterrupted };

  // `interactive`: stdin is a terminal (use libedit). `history_file`: where history is loaded
  // from and saved to (empty: none).
  LineInput(bool interactive, std::string history_file);
  ~LineInput();
  LineInput(const LineInput&) = delete;
  LineInput& operator=(const LineInput&) = delete;

  // Reads one line without its newline. On kInterrupted, *line holds the text typed so far.
  Status read(const std::string& prompt, std::string* line);
  // Adds a submitted entry to the history.
  void remember(const std::string& entry);

  // Called from the SIGINT handler: makes a pending read return kInterrupted.
  static void interrupt();
  static void clear_interrupt();
  static bool interrupted();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cs::cli
