"""Hand-written chat material for the bundled ShareGPT sample corpus.

Each topic is a question (with a few phrasings), an answer, and follow-up
exchanges. Answers use a small Markdown subset (paragraphs, `- ` and `1. `
lists, `### ` headings, fenced code, inline `code` and **bold**) that
make_examples.py renders into ChatGPT's HTML, so the cleaner has real markup
to turn back into Markdown.
"""

TOPICS = [
    {
        "questions": [
            "How do I reverse a list in Python without changing the original?",
            "What is the cleanest way to get a reversed copy of a Python list?",
        ],
        "answer": """Use slicing, which builds a new list and leaves the original untouched:

```python
numbers = [1, 2, 3, 4]
reversed_copy = numbers[::-1]
print(reversed_copy)  # [4, 3, 2, 1]
print(numbers)        # [1, 2, 3, 4]
```

Another option is `list(reversed(numbers))`. The built-in `reversed` returns an iterator, so wrapping it in `list` gives you a new list as well. Both approaches take linear time.""",
        "followups": [
            ("And how do I reverse it in place?", """Call the list's own method:

```python
numbers.reverse()
```

It returns `None` and changes the list itself, so do not write `numbers = numbers.reverse()`, because that would replace your list with `None`."""),
            ("Which one is faster?", """For small lists the difference is tiny. Slicing is usually a little faster than `list(reversed(x))` because it runs entirely in C without creating an iterator object. If you only need to loop over the items backwards, use `for item in reversed(numbers):` and avoid the copy altogether."""),
        ],
    },
    {
        "questions": [
            "Can you explain what a Python decorator is with a simple example?",
            "I keep seeing @something above Python functions. What does it do?",
        ],
        "answer": """A decorator is a function that takes another function and returns a new function that usually adds some behaviour around the original one. The `@name` line is just a shortcut for `func = name(func)`.

Here is a decorator that measures how long a function takes:

```python
import functools
import time


def timed(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start_time = time.perf_counter()
        result = func(*args, **kwargs)
        elapsed = time.perf_counter() - start_time
        print(f"{func.__name__} took {elapsed:.3f} s")
        return result
    return wrapper


@timed
def slow_sum(limit):
    return sum(range(limit))


slow_sum(10_000_000)
```

A few things to notice:

- `functools.wraps` copies the name and docstring of the original function onto the wrapper.
- The wrapper accepts `*args` and `**kwargs` so it works for any signature.
- The decorator runs once, when the function is defined, not on every call.""",
        "followups": [
            ("Can a decorator take its own arguments?", """Yes. You add one more level of functions: the outer one receives the arguments and returns the real decorator.

```python
def repeat(times):
    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for _ in range(times - 1):
                func(*args, **kwargs)
            return func(*args, **kwargs)
        return wrapper
    return decorator


@repeat(times=3)
def greet(name):
    print(f"Hello, {name}!")
```

Calling `greet("Ada")` now prints the greeting three times."""),
        ],
    },
    {
        "questions": [
            "How do I read a CSV file with pandas and compute the average of one column?",
            "What's the quickest way to get the mean of a column from a CSV in Python?",
        ],
        "answer": """With pandas it takes two lines:

```python
import pandas as pd

sales = pd.read_csv("sales.csv")
print(sales["amount"].mean())
```

If the column contains missing values, `mean()` skips them by default. If some values are stored as text, convert them first:

```python
sales["amount"] = pd.to_numeric(sales["amount"], errors="coerce")
```

With `errors="coerce"`, anything that cannot be parsed becomes `NaN` instead of raising an error.""",
        "followups": [
            ("How can I group the average by region?", """Use `groupby` and then take the mean of the column you care about:

```python
average_by_region = sales.groupby("region")["amount"].mean()
print(average_by_region.sort_values(ascending=False))
```

The result is a Series indexed by region. Call `.reset_index()` on it if you prefer a regular DataFrame with two columns."""),
        ],
    },
    {
        "questions": [
            "What is the difference between let, const and var in JavaScript?",
            "When should I use const instead of let in JavaScript?",
        ],
        "answer": """All three declare variables, but they differ in scope and in whether you can reassign them.

- `var` is function scoped and is hoisted, which means it exists before the line where it is declared (with the value `undefined`).
- `let` is block scoped: it only exists inside the nearest pair of curly braces.
- `const` is also block scoped, but the binding cannot be reassigned.

```javascript
function example() {
  if (true) {
    var a = 1;
    let b = 2;
    const c = 3;
  }
  console.log(a); // 1
  console.log(typeof b); // "undefined"
}
```

Note that `const` does not make objects immutable. You can still change the properties of a `const` object; you just cannot point the name at a different object. A common rule of thumb is to use `const` by default, `let` when you really need to reassign, and avoid `var` in new code.""",
        "followups": [
            ("So how do I make an object truly immutable?", """Use `Object.freeze`:

```javascript
const settings = Object.freeze({ theme: "dark", fontSize: 14 });
settings.theme = "light"; // ignored, or a TypeError in strict mode
```

Keep in mind that `Object.freeze` is shallow. Nested objects remain mutable unless you freeze them as well, for example with a small recursive helper."""),
        ],
    },
    {
        "questions": [
            "How do I fetch JSON from an API in JavaScript and handle errors properly?",
            "Can you show me how to use fetch with async/await?",
        ],
        "answer": """Here is a small helper using `async` and `await`:

```javascript
async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`Request failed with status ${response.status}`);
  }
  return response.json();
}

async function main() {
  try {
    const user = await getJson("https://api.example.com/users/42");
    console.log(user.name);
  } catch (error) {
    console.error("Could not load the user:", error.message);
  }
}

main();
```

The important detail is that `fetch` only rejects on network failures. A 404 or 500 response still resolves, so you have to check `response.ok` yourself.""",
        "followups": [
            ("How do I add a timeout?", """Use an `AbortController` and cancel the request after a delay:

```javascript
async function getJsonWithTimeout(url, milliseconds = 5000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), milliseconds);
  try {
    const response = await fetch(url, { signal: controller.signal });
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}
```

When the timer fires, `fetch` rejects with an `AbortError`, which your `catch` block can recognise by checking `error.name`."""),
        ],
    },
    {
        "questions": [
            "Write a Rust function that counts how often each word appears in a string.",
            "How do I count word frequencies in Rust?",
        ],
        "answer": """A `HashMap` with the `entry` API makes this short:

```rust
use std::collections::HashMap;

fn word_counts(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for word in text.split_whitespace() {
        let normalized = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if normalized.is_empty() {
            continue;
        }
        *counts.entry(normalized).or_insert(0) += 1;
    }
    counts
}

fn main() {
    let counts = word_counts("The cat and the hat. The end!");
    println!("{:?}", counts.get("the")); // Some(3)
}
```

`entry(key).or_insert(0)` returns a mutable reference to the value, inserting zero first if the key is new, so a single line handles both cases.""",
        "followups": [
            ("How can I print the words sorted by count?", """Collect the map into a vector and sort it:

```rust
let mut pairs: Vec<(String, usize)> = counts.into_iter().collect();
pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
for (word, count) in pairs.iter().take(10) {
    println!("{word}: {count}");
}
```

The `then_with` part breaks ties alphabetically, which keeps the output stable between runs."""),
        ],
    },
    {
        "questions": [
            "What does the borrow checker in Rust actually check?",
            "Can you explain Rust ownership and borrowing in simple terms?",
        ],
        "answer": """The borrow checker enforces a few rules at compile time so that memory is always used safely:

1. Every value has exactly one owner. When the owner goes out of scope, the value is dropped.
2. You can have either any number of shared references (`&T`) or exactly one mutable reference (`&mut T`) to a value at the same time, but not both.
3. A reference must never outlive the value it points to.

For example, this does not compile:

```rust
let mut names = vec![String::from("Ada")];
let first = &names[0];
names.push(String::from("Grace"));
println!("{first}");
```

Pushing may move the vector's buffer to a new place in memory, which would leave `first` pointing at freed memory. The compiler sees that a shared borrow is still alive when the mutable borrow for `push` happens and rejects the program. The fix is to finish using `first` before pushing, or to clone the string.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I write a simple HTTP server in Go?",
            "Show me a minimal web server in Go with one JSON endpoint.",
        ],
        "answer": """The standard library is enough:

```go
package main

import (
	"encoding/json"
	"log"
	"net/http"
)

type status struct {
	Service string `json:"service"`
	Healthy bool   `json:"healthy"`
}

func statusHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(status{Service: "inventory", Healthy: true})
}

func main() {
	http.HandleFunc("/status", statusHandler)
	log.Println("listening on :8080")
	log.Fatal(http.ListenAndServe(":8080", nil))
}
```

Run it with `go run main.go` and open `http://localhost:8080/status`. Each request is handled in its own goroutine, so the server is concurrent out of the box.""",
        "followups": [
            ("How do I shut it down gracefully?", """Create an `http.Server` yourself and call `Shutdown` when the process receives a signal:

```go
server := &http.Server{Addr: ":8080"}
go func() {
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}()

stop := make(chan os.Signal, 1)
signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
<-stop

ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
defer cancel()
server.Shutdown(ctx)
```

`Shutdown` stops accepting new connections and waits for requests that are already running to finish, up to the deadline in the context."""),
        ],
    },
    {
        "questions": [
            "What are goroutines and channels in Go?",
            "How do goroutines communicate with each other?",
        ],
        "answer": """A goroutine is a lightweight thread managed by the Go runtime. You start one by putting `go` in front of a function call. Channels are typed pipes that goroutines use to send values to each other safely.

```go
func worker(id int, jobs <-chan int, results chan<- int) {
	for job := range jobs {
		results <- job * job
	}
}

func main() {
	jobs := make(chan int, 100)
	results := make(chan int, 100)
	for id := 1; id <= 3; id++ {
		go worker(id, jobs, results)
	}
	for n := 1; n <= 9; n++ {
		jobs <- n
	}
	close(jobs)
	for i := 0; i < 9; i++ {
		fmt.Println(<-results)
	}
}
```

Three workers share the work. Closing the `jobs` channel tells them there is nothing more to do, and the `range` loop in each worker ends.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I find the top 5 customers by total order value in SQL?",
            "Write a SQL query that returns the customers who spent the most.",
        ],
        "answer": """Assuming a table `orders` with `customer_id` and `amount`, group and sort:

```sql
SELECT customer_id,
       SUM(amount) AS total_spent
FROM orders
GROUP BY customer_id
ORDER BY total_spent DESC
LIMIT 5;
```

If you also want the customer's name, join the `customers` table:

```sql
SELECT c.name,
       SUM(o.amount) AS total_spent
FROM orders AS o
JOIN customers AS c ON c.id = o.customer_id
GROUP BY c.id, c.name
ORDER BY total_spent DESC
LIMIT 5;
```

Grouping by `c.id` as well as `c.name` keeps two different customers with the same name apart.""",
        "followups": [
            ("What is the difference between WHERE and HAVING?", """`WHERE` filters rows before they are grouped, and `HAVING` filters groups after the aggregation. For example, to keep only customers who spent more than 1000 on orders from this year:

```sql
SELECT customer_id, SUM(amount) AS total_spent
FROM orders
WHERE order_date >= '2023-01-01'
GROUP BY customer_id
HAVING SUM(amount) > 1000;
```

You cannot use an aggregate such as `SUM` inside `WHERE`, which is exactly why `HAVING` exists."""),
        ],
    },
    {
        "questions": [
            "What is a database index and when should I add one?",
            "Why is my SQL query slow on a big table?",
        ],
        "answer": """An index is a separate data structure, usually a B-tree, that keeps the values of one or more columns sorted together with pointers to the matching rows. It lets the database find rows without scanning the whole table.

Add an index when:

- a column appears often in `WHERE`, `JOIN` or `ORDER BY` clauses;
- the table is large and queries return a small fraction of its rows;
- you need to enforce uniqueness.

Indexes are not free. Every insert, update and delete must also update the index, and the index takes disk space. Use `EXPLAIN` to see whether a query actually uses an index:

```sql
EXPLAIN ANALYZE
SELECT * FROM orders WHERE customer_id = 42;
```

If the plan shows a sequential scan on a large table, an index on `customer_id` will probably help.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I find all files larger than 100 MB on Linux?",
            "What's a bash command to list big files in a directory tree?",
        ],
        "answer": """Use `find` with the `-size` test:

```bash
find /home -type f -size +100M -exec ls -lh {} + 2>/dev/null
```

To see the largest files first, combine `du` and `sort`:

```bash
du -ah /home 2>/dev/null | sort -rh | head -n 20
```

The `2>/dev/null` part hides "Permission denied" messages for folders you cannot read.""",
        "followups": [
            ("How do I delete log files older than 30 days?", """`find` can do that too. Always run it once without `-delete` to check the list:

```bash
find /var/log/myapp -name "*.log" -type f -mtime +30
find /var/log/myapp -name "*.log" -type f -mtime +30 -delete
```

`-mtime +30` matches files last modified more than 30 days ago."""),
        ],
    },
    {
        "questions": [
            "Can you write a bash script that backs up a folder with a date in the file name?",
            "How do I make a dated tar backup with a shell script?",
        ],
        "answer": """Here is a small script that creates a compressed archive and keeps the last seven backups:

```bash
#!/usr/bin/env bash
set -euo pipefail

source_dir="${1:?usage: backup.sh SOURCE_DIR BACKUP_DIR}"
backup_dir="${2:?usage: backup.sh SOURCE_DIR BACKUP_DIR}"
stamp="$(date +%Y-%m-%d_%H%M)"

mkdir -p "$backup_dir"
tar -czf "$backup_dir/backup_$stamp.tar.gz" -C "$(dirname "$source_dir")" "$(basename "$source_dir")"

ls -1t "$backup_dir"/backup_*.tar.gz | tail -n +8 | xargs -r rm --
echo "created $backup_dir/backup_$stamp.tar.gz"
```

`set -euo pipefail` stops the script on the first error, on unset variables and on failures inside pipes, which is what you want for backups.""",
        "followups": [
            ("How do I run it every night?", """Add a cron entry with `crontab -e`:

```bash
30 2 * * * /home/me/bin/backup.sh /home/me/projects /mnt/backups >> /home/me/backup.log 2>&1
```

This runs the script every day at 02:30 and appends its output to a log file so you can check that it worked."""),
        ],
    },
    {
        "questions": [
            "How do I implement binary search in C++?",
            "Can you write an iterative binary search in C++ and explain it?",
        ],
        "answer": """Here is an iterative version that returns the index of the target or -1:

```cpp
#include <iostream>
#include <vector>

int binary_search(const std::vector<int>& values, int target) {
    int low = 0;
    int high = static_cast<int>(values.size()) - 1;
    while (low <= high) {
        int middle = low + (high - low) / 2;
        if (values[middle] == target) {
            return middle;
        }
        if (values[middle] < target) {
            low = middle + 1;
        } else {
            high = middle - 1;
        }
    }
    return -1;
}

int main() {
    std::vector<int> values = {2, 5, 8, 12, 16, 23, 38, 56};
    std::cout << binary_search(values, 23) << std::endl; // 5
}
```

Computing the middle as `low + (high - low) / 2` instead of `(low + high) / 2` avoids integer overflow on very large arrays. The loop halves the search range each time, so it runs in O(log n).""",
        "followups": [
            ("Is there something in the standard library for this?", """Yes. `std::binary_search` tells you whether a value is present, and `std::lower_bound` gives you an iterator to the first element that is not less than the value:

```cpp
auto it = std::lower_bound(values.begin(), values.end(), 23);
if (it != values.end() && *it == 23) {
    std::cout << "found at " << (it - values.begin()) << std::endl;
}
```

Both require the range to be sorted."""),
        ],
    },
    {
        "questions": [
            "What is the difference between a pointer and a reference in C++?",
            "When do I use a reference instead of a pointer in C++?",
        ],
        "answer": """Both let you refer to another object, but they behave differently:

- A reference must be initialised when it is created and always refers to the same object afterwards. It cannot be null.
- A pointer is an object of its own that stores an address. It can be null, it can be changed to point somewhere else, and you need `*` or `->` to reach the object.

```cpp
int count = 10;
int& alias = count;   // reference
int* address = &count; // pointer

alias += 1;      // count is now 11
*address += 1;   // count is now 12
address = nullptr; // allowed; a reference could not do this
```

Prefer references for function parameters that must always refer to a valid object, and pointers (or better, smart pointers such as `std::unique_ptr`) when "no object" is a valid state or when ownership is involved.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I read a text file line by line in Java?",
            "What is the modern way to read all lines from a file in Java?",
        ],
        "answer": """Since Java 8 the `java.nio.file` package makes this easy:

```java
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

public class ReadLines {
    public static void main(String[] args) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("notes.txt"));
        for (String line : lines) {
            System.out.println(line);
        }
    }
}
```

For very large files, stream the lines instead of loading them all at once:

```java
try (var stream = Files.lines(Path.of("big.log"))) {
    long errors = stream.filter(line -> line.contains("ERROR")).count();
    System.out.println(errors + " error lines");
}
```

The try-with-resources block makes sure the file is closed even if an exception is thrown.""",
        "followups": [],
    },
    {
        "questions": [
            "Can you explain the difference between an interface and an abstract class in Java?",
            "Should I use an interface or an abstract class in Java?",
        ],
        "answer": """An interface describes what a type can do; an abstract class is a partially built class that shares code with its subclasses.

- A class can implement many interfaces but extend only one class.
- Interfaces cannot hold instance fields; abstract classes can.
- Since Java 8, interfaces may have `default` methods, which narrows the gap.

```java
interface Shape {
    double area();
    default String describe() {
        return "A shape with area " + area();
    }
}

abstract class NamedShape implements Shape {
    private final String name;
    protected NamedShape(String name) { this.name = name; }
    public String name() { return name; }
}

class Circle extends NamedShape {
    private final double radius;
    Circle(double radius) { super("circle"); this.radius = radius; }
    public double area() { return Math.PI * radius * radius; }
}
```

Use an interface when you want to define a capability that unrelated classes can share, and an abstract class when several closely related classes need common state or helper code.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I center a div horizontally and vertically with CSS?",
            "What's the easiest way to center something in CSS these days?",
        ],
        "answer": """Flexbox is the simplest way today:

```css
.container {
  display: flex;
  justify-content: center;
  align-items: center;
  min-height: 100vh;
}
```

`justify-content` centres along the main axis (horizontal by default) and `align-items` along the cross axis. CSS Grid offers an even shorter version:

```css
.container {
  display: grid;
  place-items: center;
  min-height: 100vh;
}
```

Both need the container to have a height; otherwise there is no free space to centre in.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I create a simple React component with state?",
            "Can you show a React counter using hooks?",
        ],
        "answer": """With the `useState` hook a counter looks like this:

```jsx
import { useState } from "react";

export default function Counter({ start = 0 }) {
  const [count, setCount] = useState(start);

  return (
    <div className="counter">
      <p>You clicked {count} times.</p>
      <button onClick={() => setCount(count + 1)}>Add one</button>
      <button onClick={() => setCount(start)}>Reset</button>
    </div>
  );
}
```

`useState` returns the current value and a function to update it. Calling the setter schedules a new render with the new value. When the new value depends on the old one, the safer form is `setCount(previous => previous + 1)`, because several updates in the same event are batched.""",
        "followups": [
            ("How do I load data when the component appears?", """Use `useEffect` with an empty dependency list:

```jsx
const [posts, setPosts] = useState([]);

useEffect(() => {
  let cancelled = false;
  fetch("/api/posts")
    .then((response) => response.json())
    .then((data) => {
      if (!cancelled) setPosts(data);
    });
  return () => {
    cancelled = true;
  };
}, []);
```

The cleanup function prevents updating state after the component has been removed."""),
        ],
    },
    {
        "questions": [
            "How do I undo the last git commit but keep my changes?",
            "I committed too early. How do I take back the last commit in git?",
        ],
        "answer": """Use a soft reset:

```bash
git reset --soft HEAD~1
```

The commit disappears from the history, but all its changes stay staged, so you can fix things and commit again. If you want the changes unstaged instead, use `git reset HEAD~1` (a mixed reset, which is the default).

If you have already pushed the commit and others may have pulled it, do not rewrite history. Create a new commit that reverses it instead:

```bash
git revert HEAD
```""",
        "followups": [
            ("What about changing only the commit message?", """If it is the most recent commit and you have not pushed it yet:

```bash
git commit --amend -m "A better message"
```

This replaces the last commit with a new one that has the same content and the new message."""),
        ],
    },
    {
        "questions": [
            "What is the difference between git merge and git rebase?",
            "Should I merge or rebase my feature branch?",
        ],
        "answer": """Both bring the changes of one branch into another, but they shape the history differently.

- **Merge** creates a merge commit that ties the two histories together. Nothing is rewritten, and you can see exactly when branches joined.
- **Rebase** replays your commits on top of the other branch, producing a straight line of history. The commits get new hashes.

A common workflow is to rebase your own local feature branch on the latest `main` to keep it up to date, and then merge it into `main` through a pull request:

```bash
git switch feature/login
git fetch origin
git rebase origin/main
```

The golden rule: never rebase commits that other people have already based work on, because their history would no longer match yours.""",
        "followups": [],
    },
    {
        "questions": [
            "Can you write a regular expression to validate an email address?",
            "What regex should I use for checking email format?",
        ],
        "answer": """A fully correct email regex is enormous, so most applications use a simple pattern and then confirm the address by sending a message to it. A reasonable check is:

```python
import re

EMAIL_PATTERN = re.compile(r"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$")

def looks_like_email(text):
    return bool(EMAIL_PATTERN.match(text))

print(looks_like_email("ada@example.com"))  # True
print(looks_like_email("not an email"))     # False
```

It requires exactly one `@`, no spaces, and a dot in the domain part. That rejects obvious typos without refusing unusual but valid addresses such as `first.last+tag@sub.example.co.uk`.""",
        "followups": [],
    },
    {
        "questions": [
            "Explain big O notation like I'm a beginner.",
            "What does O(n log n) mean?",
        ],
        "answer": """Big O notation describes how the running time (or memory use) of an algorithm grows as the input gets bigger. It ignores constant factors and focuses on the shape of the growth.

- **O(1)**: constant time. Looking up an item in a list by index takes the same time no matter how long the list is.
- **O(log n)**: the work grows very slowly. Binary search halves the remaining range at every step, so doubling the input adds only one step.
- **O(n)**: linear time. Reading every item once, such as finding the maximum of an unsorted list.
- **O(n log n)**: typical of good sorting algorithms like merge sort.
- **O(n^2)**: quadratic time, for example comparing every pair of items with two nested loops.

For a list of one million items, an O(n log n) algorithm needs roughly twenty million basic steps, while an O(n^2) algorithm needs a trillion. That is why the growth rate matters much more than small speed-ups for large inputs.""",
        "followups": [],
    },
    {
        "questions": [
            "Why is the sky blue?",
            "What makes the sky look blue during the day and red at sunset?",
        ],
        "answer": """Sunlight contains all colours. When it passes through the atmosphere, it collides with nitrogen and oxygen molecules that are much smaller than the wavelength of light. These molecules scatter short wavelengths far more strongly than long ones; the effect is called **Rayleigh scattering** and its strength grows roughly with the fourth power of the frequency.

Blue light is therefore scattered in every direction across the sky, and wherever you look, some of that scattered blue light reaches your eyes. Violet is scattered even more, but the sun emits less violet, some is absorbed high in the atmosphere, and our eyes are less sensitive to it, so we see blue.

At sunset the light travels through much more air before reaching you. Most of the blue has been scattered out of the direct beam along the way, leaving the oranges and reds.""",
        "followups": [
            ("Then why are clouds white?", """Cloud droplets are much larger than air molecules, about the same size as the wavelength of visible light or bigger. Particles of that size scatter all colours about equally, a process called Mie scattering. Equal amounts of every colour look white. Thick clouds look grey because less light makes it all the way through them."""),
        ],
    },
    {
        "questions": [
            "How does photosynthesis work?",
            "Can you explain photosynthesis simply for a school project?",
        ],
        "answer": """Photosynthesis is how plants, algae and some bacteria turn light energy into chemical energy stored in sugar. The overall reaction is:

6 CO2 + 6 H2O + light energy -> C6H12O6 + 6 O2

It happens in two stages inside the chloroplasts:

1. **Light-dependent reactions** in the thylakoid membranes. Chlorophyll absorbs light, water molecules are split, oxygen is released, and the energy is stored in the carriers ATP and NADPH.
2. **The Calvin cycle** in the stroma. The plant uses ATP and NADPH to fix carbon dioxide from the air into three-carbon sugars, which are then built into glucose and other molecules.

So the oxygen we breathe comes from the water, not from the carbon dioxide, which surprises many people.""",
        "followups": [
            ("Why are leaves green?", """Chlorophyll absorbs red and blue light very well but reflects most of the green light. The reflected green light is what reaches our eyes. In autumn, chlorophyll breaks down and other pigments such as carotenoids, which were there all along, become visible as yellow and orange."""),
        ],
    },
    {
        "questions": [
            "What is the difference between weather and climate?",
            "Can you explain climate versus weather with an example?",
        ],
        "answer": """Weather is what the atmosphere is doing at a particular place and time: today's temperature, rain, wind and clouds. Climate is the long-term pattern of weather in a region, usually averaged over thirty years or more.

A simple way to remember it: weather is your mood on a given day, climate is your personality. One cold winter does not disprove a warming climate, just as one hot day does not prove it. Climate scientists look at trends in averages and extremes over decades.""",
        "followups": [],
    },
    {
        "questions": [
            "How do vaccines train the immune system?",
            "How does a vaccine actually work in the body?",
        ],
        "answer": """A vaccine shows the immune system a harmless version or piece of a pathogen, so that it can learn to recognise the real thing without the risk of the disease.

1. The vaccine delivers an **antigen**, such as an inactivated virus, a protein from its surface, or instructions (mRNA) that let your cells make that protein for a short time.
2. Immune cells detect the antigen as foreign. B cells start producing antibodies that fit it, and T cells learn to recognise infected cells.
3. After the response calms down, long-lived **memory cells** remain.

If you later meet the real pathogen, the memory cells react within days instead of weeks, often stopping the infection before you feel seriously ill.""",
        "followups": [],
    },
    {
        "questions": [
            "Can you explain how black holes form?",
            "What happens when a massive star dies?",
        ],
        "answer": """A star spends most of its life balancing two forces: gravity pulling inward and pressure from nuclear fusion pushing outward. When a very massive star, at least about twenty times the mass of the Sun, runs out of fuel in its core, fusion stops and the pressure can no longer hold the core up.

The core collapses in less than a second. The outer layers are blown away in a supernova explosion, while the core keeps shrinking. If the remaining mass is large enough, no known force can stop the collapse and it forms a black hole: a region where gravity is so strong that not even light can escape once it crosses the boundary called the **event horizon**.

Smaller stars end differently. Stars like the Sun become white dwarfs, and stars of intermediate mass leave neutron stars.""",
        "followups": [],
    },
    {
        "questions": [
            "Give me a simple recipe for banana bread.",
            "How do I bake banana bread with overripe bananas?",
        ],
        "answer": """Here is an easy one-bowl banana bread.

### Ingredients

- 3 very ripe bananas
- 75 g melted butter
- 150 g sugar (brown sugar gives a deeper flavour)
- 1 egg, beaten
- 1 teaspoon vanilla extract
- 1 teaspoon baking soda
- a pinch of salt
- 190 g plain flour

### Steps

1. Heat the oven to 175 °C and butter a loaf tin.
2. Mash the bananas in a large bowl, then stir in the melted butter.
3. Mix in the sugar, egg and vanilla.
4. Sprinkle the baking soda and salt over the mixture and stir, then fold in the flour until just combined.
5. Pour into the tin and bake for 55 to 65 minutes, until a skewer comes out clean.

Let it cool in the tin for ten minutes before turning it out. The blacker the banana skins, the sweeter the bread.""",
        "followups": [
            ("Can I make it without eggs?", """Yes. Replace the egg with 60 g of plain yoghurt or with one tablespoon of ground flaxseed mixed with three tablespoons of water and left to thicken for five minutes. The bananas already bind the batter well, so the texture stays moist."""),
        ],
    },
    {
        "questions": [
            "How do I cook perfect rice on the stove?",
            "My rice always turns out mushy. What am I doing wrong?",
        ],
        "answer": """Mushy rice usually comes from too much water, too much stirring, or skipping the rest. For long-grain white rice:

1. Rinse 1 cup of rice in a sieve until the water runs almost clear. This removes surface starch.
2. Put it in a pot with 1.5 cups of water and a pinch of salt.
3. Bring to a boil, then turn the heat to the lowest setting and cover with a tight lid.
4. Cook for 15 minutes without lifting the lid or stirring.
5. Take the pot off the heat and let it rest, still covered, for 10 minutes.
6. Fluff with a fork.

Brown rice needs more water (about 2 cups per cup of rice) and around 40 minutes of cooking.""",
        "followups": [],
    },
    {
        "questions": [
            "What can I cook for dinner with chicken, spinach and pasta?",
            "Suggest a quick dinner using chicken and spinach.",
        ],
        "answer": """A creamy garlic chicken pasta is ready in about 25 minutes.

1. Cook 250 g of pasta in salted water. Keep a cup of the cooking water.
2. Meanwhile, cut two chicken breasts into strips, season with salt, pepper and paprika, and brown them in olive oil for 6 to 7 minutes. Set aside.
3. In the same pan, soften three sliced garlic cloves for a minute, then add 200 ml of cream (or half cream, half stock) and a handful of grated Parmesan.
4. Stir in two big handfuls of spinach until it wilts.
5. Add the pasta and chicken, loosen with some pasta water, and finish with lemon zest and black pepper.

For a lighter version, swap the cream for a mix of pasta water and a spoonful of cream cheese.""",
        "followups": [],
    },
    {
        "questions": [
            "I'm visiting Japan for 10 days in spring. Can you suggest an itinerary?",
            "What's a good first-time 10 day route through Japan?",
        ],
        "answer": """A classic first trip combines Tokyo, Kyoto and a few day trips.

- **Days 1 to 4: Tokyo.** Explore Asakusa and the Senso-ji temple, the Meiji shrine and Harajuku, Shibuya crossing, and an evening in Shinjuku. Take a day trip to Nikko or Kamakura.
- **Day 5: Hakone.** Ride the loop of train, cable car and boat around Lake Ashi, and stay in a ryokan with a hot spring.
- **Days 6 to 9: Kyoto.** Fushimi Inari early in the morning, the bamboo grove in Arashiyama, Kiyomizu-dera and the old streets of Higashiyama. Spend one day in Nara to see the deer and the great Buddha at Todai-ji.
- **Day 10: Osaka.** Street food in Dotonbori before flying home from Kansai airport.

In spring, cherry blossoms usually peak in late March or early April, and popular spots are crowded, so book accommodation early. A 7-day Japan Rail Pass may or may not pay off depending on current prices; compare it with single tickets for your exact route.""",
        "followups": [
            ("What should I know about etiquette there?", """A few things help a lot:

- Do not tip. Good service is expected and a tip can cause confusion.
- Stand on the left on escalators in Tokyo and on the right in Osaka.
- Keep your voice low and do not take phone calls on trains.
- Take off your shoes where you see a raised floor at the entrance, and use the toilet slippers only in the toilet.
- Carry your rubbish with you; public bins are rare.

People are very forgiving with visitors, so do not worry too much about small mistakes."""),
        ],
    },
    {
        "questions": [
            "What should I pack for a week of hiking in the Alps in summer?",
            "Can you give me a packing list for hut-to-hut hiking?",
        ],
        "answer": """For hut-to-hut hiking you carry everything on your back, so aim for a pack of 8 to 10 kg.

- Broken-in hiking boots with good grip
- Waterproof jacket and trousers
- A warm fleece or light down jacket (it can snow above 2500 m even in July)
- Two sets of quick-drying clothes, plus one set to sleep in
- Sun hat, sunglasses and strong sunscreen
- A silk or cotton sleeping bag liner, which most huts require
- Headlamp, small first aid kit, blister plasters
- Water bottles for 1.5 to 2 litres
- Map, phone with offline maps, and a power bank
- Cash, because many huts cannot take cards

Check the weather every morning and start early; thunderstorms often build in the afternoon.""",
        "followups": [],
    },
    {
        "questions": [
            "Is it better to travel through Europe by train or by plane?",
            "How do I decide between trains and budget flights in Europe?",
        ],
        "answer": """For distances up to about 700 km, trains often win once you count the whole journey. They leave from city centres, you do not need to arrive an hour early, and you can work or relax on board. High-speed lines such as Paris to Lyon or Madrid to Barcelona take two to three hours.

Flights make sense for long hops such as Lisbon to Warsaw, or when you are crossing the sea. Watch out for hidden costs with budget airlines: luggage fees, airports far from the city, and transfers.

Trains also produce far less carbon dioxide per passenger. A rail pass can be worth it if you plan many long journeys, but for a few trips, booking single tickets early is usually cheaper.""",
        "followups": [],
    },
    {
        "questions": [
            "Can you help me write a polite email asking my manager for a day off?",
            "Write a short professional email requesting leave next Friday.",
        ],
        "answer": """Of course. Here is a short version you can adapt:

**Subject:** Leave request for Friday, 14 July

Hi Maria,

I would like to request a day of annual leave on Friday, 14 July. I have checked the project calendar, and there are no deadlines that day. I will finish the report draft by Thursday afternoon, and Tom has agreed to cover any urgent client questions.

Please let me know if that works for you.

Thank you,
Daniel

Keep it brief, give the date clearly, and show that you have thought about how your work will be covered. That makes it easy for your manager to say yes.""",
        "followups": [
            ("Can you make it a bit more casual?", """Sure:

Hi Maria,

Would it be okay if I took next Friday, 14 July, off? Nothing is due that day, I will have the report draft ready by Thursday, and Tom can handle anything urgent.

Thanks!
Daniel"""),
        ],
    },
    {
        "questions": [
            "Write a short poem about the ocean at night.",
            "Can you write me a poem about the sea under the moon?",
        ],
        "answer": """Here is a short poem:

The tide comes in on silver feet,
it whispers to the sleeping shore,
the moon lays down a shining street
to places no one's walked before.

The boats are resting in the bay,
their lanterns low, their ropes undone,
and every wave has words to say
it saved from chasing after sun.

So listen when the night is deep
and all the harbour lights are gone:
the sea is singing you to sleep
and will be singing until dawn.""",
        "followups": [
            ("Can you write it as a haiku instead?", """Moonlight on black waves,
the harbour breathes in and out,
one boat's lantern sways."""),
        ],
    },
    {
        "questions": [
            "How can I improve my essay introductions?",
            "My essay introductions feel boring. Any tips?",
        ],
        "answer": """A strong introduction does three jobs: it catches interest, gives context, and states your argument. Some practical tips:

1. **Start with something specific.** A surprising fact, a short scene, or a concrete question works better than a broad statement like "Since the dawn of time".
2. **Narrow down quickly.** Move from the hook to your actual topic in two or three sentences.
3. **End with a clear thesis.** One sentence that says what you will argue, not just what you will talk about.
4. **Write it last.** Once the body is finished, you know exactly what you are introducing.

For example, instead of "Social media has changed society", try "In 2010 the average teenager checked a phone a few times a day; today it is closer to a hundred. This essay argues that the change has reshaped how young people form friendships more than how they get news."
""",
        "followups": [],
    },
    {
        "questions": [
            "Can you summarise the plot of Romeo and Juliet in a few sentences?",
            "What happens in Romeo and Juliet?",
        ],
        "answer": """Romeo Montague and Juliet Capulet, the children of two feuding families in Verona, fall in love at first sight at a party and secretly marry with the help of Friar Laurence. Soon after, Romeo kills Juliet's cousin Tybalt in a street fight and is banished from the city.

To avoid a forced marriage to Paris, Juliet takes a potion that makes her appear dead, planning to wake and flee with Romeo. The message explaining the plan never reaches him. Believing Juliet is truly dead, Romeo poisons himself at her tomb; Juliet wakes, finds him dead, and stabs herself. Their deaths finally reconcile the two families.""",
        "followups": [
            ("What are the main themes?", """The big themes are:

- **Love versus hate:** the young lovers' devotion is set against their families' feud.
- **Fate:** the lovers are called "star-crossed" from the first lines, and chance keeps working against them.
- **Haste:** almost every decision is made in a rush, and the speed of events drives the tragedy.
- **Youth and authority:** the young characters struggle against the rules and choices of their parents."""),
        ],
    },
    {
        "questions": [
            "How do I solve the quadratic equation x^2 - 5x + 6 = 0?",
            "Can you show me how to factor a quadratic step by step?",
        ],
        "answer": """You can factor it. Look for two numbers that multiply to 6 and add up to -5: those are -2 and -3.

x^2 - 5x + 6 = (x - 2)(x - 3) = 0

A product is zero only if one of the factors is zero, so:

- x - 2 = 0 gives x = 2
- x - 3 = 0 gives x = 3

You can check with the quadratic formula x = (5 ± sqrt(25 - 24)) / 2 = (5 ± 1) / 2, which gives 3 and 2 again.""",
        "followups": [
            ("What if it does not factor nicely?", """Then use the quadratic formula for ax^2 + bx + c = 0:

x = (-b ± sqrt(b^2 - 4ac)) / (2a)

The expression under the square root, b^2 - 4ac, is called the discriminant. If it is positive there are two real solutions, if it is zero there is one, and if it is negative the solutions are complex numbers."""),
        ],
    },
    {
        "questions": [
            "What is the derivative of x^2 * sin(x)?",
            "How do I use the product rule on x squared times sine x?",
        ],
        "answer": """Use the product rule: if f(x) = u(x) v(x), then f'(x) = u'(x) v(x) + u(x) v'(x).

Here u = x^2 and v = sin(x), so u' = 2x and v' = cos(x). Therefore

f'(x) = 2x sin(x) + x^2 cos(x)

You can factor out x if you like: f'(x) = x (2 sin(x) + x cos(x)).""",
        "followups": [],
    },
    {
        "questions": [
            "Can you explain what a p-value means?",
            "What does p < 0.05 actually tell me?",
        ],
        "answer": """A p-value is the probability of seeing data at least as extreme as yours **if the null hypothesis were true**. It is not the probability that the null hypothesis is true.

Suppose you test whether a coin is fair and get 60 heads in 100 flips. The p-value answers: if the coin really were fair, how often would we see a result this far from 50 or further? That is about 5.7 percent for a two-sided test.

A threshold such as 0.05 is a convention for deciding when a result is surprising enough to reject the null hypothesis. Keep in mind:

- A small p-value does not tell you the effect is large or important.
- A large p-value does not prove the null hypothesis; you may simply lack data.
- Running many tests and reporting only the significant ones makes false positives very likely.""",
        "followups": [],
    },
    {
        "questions": [
            "What is the probability of getting at least one six in four rolls of a die?",
            "How do I compute 'at least one' probabilities?",
        ],
        "answer": """The easiest route is the complement: compute the probability of **no** six and subtract it from one.

The chance of not rolling a six in one roll is 5/6. For four independent rolls it is (5/6)^4 = 625/1296, which is about 0.482.

So the probability of at least one six is 1 - 0.482 = 0.518, a little better than even. This is the famous bet that the Chevalier de Méré used to win in the seventeenth century.""",
        "followups": [],
    },
    {
        "questions": [
            "How can I start running if I have never exercised?",
            "Give me a beginner plan to be able to run 5 km.",
        ],
        "answer": """Start with a walk-run plan three times a week, with a rest day between sessions:

- **Weeks 1 and 2:** alternate 1 minute of easy running with 2 minutes of walking, eight times.
- **Weeks 3 and 4:** run 2 minutes, walk 2 minutes, six times.
- **Weeks 5 and 6:** run 5 minutes, walk 1 minute, four times.
- **Weeks 7 and 8:** run 10 minutes, walk 1 minute, three times.
- **Week 9:** run 20 to 30 minutes without stopping.

Run slowly enough that you could hold a conversation. If a week feels too hard, repeat it; there is no prize for rushing. Good shoes matter more than any other gear, and a bit of soreness is normal, but sharp pain is a sign to stop.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I make a monthly budget?",
            "What is a simple method for budgeting my salary?",
        ],
        "answer": """A simple starting point is the 50/30/20 rule applied to your take-home pay:

- **50 percent for needs:** rent, utilities, groceries, transport, insurance, minimum loan payments.
- **30 percent for wants:** eating out, hobbies, subscriptions, holidays.
- **20 percent for saving and paying off debt faster.**

To set it up:

1. Look at your bank statements for the last three months and sort every expense into those groups.
2. Compare the totals with the targets and pick one or two categories to adjust.
3. Automate: move the savings amount to a separate account on payday, before you can spend it.
4. Review once a month.

Build an emergency fund of three to six months of expenses before investing heavily.""",
        "followups": [],
    },
    {
        "questions": [
            "What is the difference between a stock and a bond?",
            "Should a beginner invest in stocks or bonds?",
        ],
        "answer": """A **stock** is a small piece of ownership in a company. Its value rises and falls with the company's prospects, and you may receive dividends. Over long periods stocks have returned more than bonds, but with much larger swings.

A **bond** is a loan to a government or company. You receive regular interest and get your money back at the end, unless the borrower defaults. Bonds are usually calmer, and their prices move opposite to interest rates.

Most beginners do well with low-cost index funds that hold many stocks and bonds at once. A higher share of stocks suits long time horizons; more bonds suit money you will need within a few years. This is general information, not personal financial advice.""",
        "followups": [],
    },
    {
        "questions": [
            "How can I get better at public speaking?",
            "I get very nervous before presentations. What can I do?",
        ],
        "answer": """Nervousness is normal; even experienced speakers feel it. A few things make a big difference:

1. **Practise out loud**, several times, ideally standing up. Reading silently is not the same.
2. **Know your first minute by heart.** Most nerves fade once you are underway.
3. **Focus on the message, not on yourself.** Ask what the audience needs to understand.
4. **Slow down and pause.** Pauses feel long to you but sound confident to listeners.
5. **Breathe.** A slow exhale that is longer than the inhale calms the body.
6. **Start small.** Volunteer for short updates at work, or join a group such as Toastmasters.

Record yourself once; it is uncomfortable, but you will spot habits you cannot notice otherwise.""",
        "followups": [],
    },
    {
        "questions": [
            "What are some good habits for better sleep?",
            "I have trouble falling asleep. Any advice?",
        ],
        "answer": """Sleep researchers keep coming back to the same basics:

- Go to bed and get up at the same time every day, weekends included.
- Get daylight in the morning; it sets your internal clock.
- Keep the bedroom cool, dark and quiet.
- Avoid caffeine after early afternoon and heavy meals late in the evening.
- Dim the lights and put screens away for the last hour before bed.
- If you cannot sleep after about twenty minutes, get up and do something calm in low light until you feel sleepy.

If poor sleep lasts for weeks or you snore loudly and feel exhausted during the day, talk to a doctor; conditions such as sleep apnoea are common and treatable.""",
        "followups": [],
    },
    {
        "questions": [
            "What caused the fall of the Western Roman Empire?",
            "Why did Rome fall?",
        ],
        "answer": """Historians see it as a long process with several causes that reinforced each other rather than a single event:

- **Political instability:** in the third century alone there were dozens of emperors, many of them murdered, which weakened government.
- **Economic trouble:** heavy taxes, debased coinage and disrupted trade strained the provinces.
- **Military pressure:** migrating peoples such as the Goths, Vandals and Huns pushed against the borders, and Rome relied more and more on hired troops.
- **Division of the empire:** after 395 the East and West were governed separately, and the wealthier East could not always help the West.

The traditional end date is 476, when Odoacer deposed the last western emperor, Romulus Augustulus. The Eastern Roman Empire, often called the Byzantine Empire, lasted until 1453.""",
        "followups": [],
    },
    {
        "questions": [
            "What is machine learning in simple words?",
            "Can you explain the difference between AI, machine learning and deep learning?",
        ],
        "answer": """Machine learning is a way of building programs that learn patterns from examples instead of following rules written by hand. You show the system many inputs with the right answers, and it adjusts its internal parameters until its own answers match.

- **Artificial intelligence** is the broad goal of making computers do tasks that seem to need intelligence.
- **Machine learning** is one approach to AI: learning from data.
- **Deep learning** is a kind of machine learning that uses neural networks with many layers. It powers image recognition, speech recognition and language models.

A spam filter is a classic example: instead of listing every spam phrase, you train a model on thousands of emails marked as spam or not spam, and it learns which features matter.""",
        "followups": [
            ("What is overfitting?", """Overfitting happens when a model learns the training examples too well, including their noise, and then performs poorly on new data. It is like a student who memorises the answers to last year's exam instead of understanding the subject.

Common remedies are more training data, simpler models, regularisation, and early stopping: you keep a separate validation set and stop training when its error starts to rise."""),
        ],
    },
    {
        "questions": [
            "How do I train a simple neural network in PyTorch?",
            "Can you show a minimal PyTorch training loop?",
        ],
        "answer": """Here is a complete example that learns to fit a noisy line:

```python
import torch
from torch import nn

torch.manual_seed(0)
inputs = torch.linspace(-1, 1, 200).unsqueeze(1)
targets = 3 * inputs + 0.5 + 0.1 * torch.randn_like(inputs)

model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
loss_function = nn.MSELoss()

for step in range(500):
    optimizer.zero_grad()
    predictions = model(inputs)
    loss = loss_function(predictions, targets)
    loss.backward()
    optimizer.step()
    if step % 100 == 0:
        print(f"step {step}: loss {loss.item():.4f}")
```

The loop always has the same four steps: clear old gradients, run the model, compute the loss, and let the optimizer update the weights using the new gradients.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I write unit tests in Python with pytest?",
            "Can you give me an example of a pytest test file?",
        ],
        "answer": """Put tests in files named `test_*.py` and write plain functions that use `assert`:

```python
# shopping.py
def total_price(items, discount=0.0):
    if not 0 <= discount <= 1:
        raise ValueError("discount must be between 0 and 1")
    return round(sum(items) * (1 - discount), 2)
```

```python
# test_shopping.py
import pytest

from shopping import total_price


def test_total_without_discount():
    assert total_price([10.0, 5.5]) == 15.5


def test_discount_is_applied():
    assert total_price([100.0], discount=0.25) == 75.0


def test_invalid_discount_is_rejected():
    with pytest.raises(ValueError):
        total_price([1.0], discount=2)
```

Run `pytest -q` in the project folder. pytest finds the tests automatically and shows a readable diff when an assertion fails.""",
        "followups": [
            ("How do I test many inputs without repeating myself?", """Use `pytest.mark.parametrize`:

```python
@pytest.mark.parametrize(
    "items, discount, expected",
    [([10.0], 0.0, 10.0), ([10.0], 0.5, 5.0), ([], 0.1, 0.0)],
)
def test_total_price(items, discount, expected):
    assert total_price(items, discount) == expected
```

Each tuple becomes its own test case in the report."""),
        ],
    },
    {
        "questions": [
            "What is Docker and why would I use it?",
            "Can you write a Dockerfile for a small Python web app?",
        ],
        "answer": """Docker packages an application together with everything it needs (libraries, runtime, system tools) into an image. A container started from that image runs the same way on your laptop, a test server or the cloud.

A Dockerfile for a small Flask app might look like this:

```dockerfile
FROM python:3.11-slim

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]
```

Copying `requirements.txt` and installing dependencies before copying the rest of the code lets Docker reuse the cached layer when only your code changes, which makes rebuilds much faster.""",
        "followups": [],
    },
    {
        "questions": [
            "What's the difference between a process and a thread?",
            "Explain processes versus threads for an interview.",
        ],
        "answer": """A **process** is a running program with its own memory space, file handles and resources. A **thread** is a path of execution inside a process; all threads of a process share its memory.

- Creating a process is more expensive, but processes are isolated: a crash in one does not corrupt another.
- Threads are cheaper and can share data directly, but that sharing requires care (locks, atomic operations) to avoid race conditions.

In Python specifically, the global interpreter lock means that threads do not run Python bytecode in parallel, so CPU-heavy work is usually spread over processes (for example with `multiprocessing`), while threads are fine for waiting on input and output.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I learn a new language quickly as an adult?",
            "What is the most effective way to learn Spanish on my own?",
        ],
        "answer": """Adults learn languages well when they combine a few habits:

1. **Daily contact beats long weekly sessions.** Twenty to thirty minutes every day works better than three hours on Sunday.
2. **Learn the most frequent words first.** The thousand most common words cover most everyday conversation.
3. **Use spaced repetition** flashcards for vocabulary.
4. **Listen a lot** to material slightly above your level: podcasts for learners, then series with subtitles in the target language.
5. **Speak early,** with a tutor or a language exchange partner, even when it feels awkward.
6. **Learn phrases, not just single words,** so you pick up grammar naturally.

Set a concrete goal, such as ordering in a restaurant or having a ten-minute conversation, to keep yourself motivated.""",
        "followups": [],
    },
    {
        "questions": [
            "Can you suggest some names for a small coffee shop?",
            "I'm opening a cosy cafe. Help me brainstorm names.",
        ],
        "answer": """Here are some ideas grouped by mood:

- **Warm and cosy:** The Daily Grind, Hearth and Bean, Little Ember Coffee, Sunday Morning
- **Playful:** Brew Ha Ha, Bean There, Espresso Yourself, The Grind Stand
- **Local and simple:** Corner Cup, Main Street Roasters, Harbour Coffee, Northside Beans
- **Elegant:** Crema, Velvet Roast, Oak and Origin, The Copper Pot

Before you decide, check that the name is not already used by a cafe nearby, that the web domain and social media handles are free, and that it is easy to say and spell when someone recommends you to a friend.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I handle exceptions properly in Python?",
            "What is the right way to use try/except in Python?",
        ],
        "answer": """Catch only the exceptions you expect and can handle, keep the `try` block small, and let everything else propagate:

```python
import json


def load_settings(path):
    try:
        with open(path, encoding="utf-8") as settings_file:
            return json.load(settings_file)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
```

Some guidelines:

- Avoid a bare `except:`; it also catches `KeyboardInterrupt` and hides bugs.
- Use `raise ... from error` to keep the original cause in the traceback.
- Use `finally` or a `with` block for clean-up that must always happen.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I use TypeScript generics?",
            "Can you explain generics in TypeScript with an example?",
        ],
        "answer": """Generics let you write functions and types that work with many types while keeping type information. The type parameter is written in angle brackets:

```typescript
function firstItem<T>(items: T[]): T | undefined {
  return items[0];
}

const firstName = firstItem(["Ada", "Grace"]); // string | undefined
const firstNumber = firstItem([1, 2, 3]);      // number | undefined

interface ApiResponse<Data> {
  status: number;
  data: Data;
}

type User = { id: number; name: string };
const response: ApiResponse<User> = { status: 200, data: { id: 1, name: "Ada" } };
```

You can also constrain a generic, for example `function longest<T extends { length: number }>(a: T, b: T): T`, so that it accepts only values that have a `length` property.""",
        "followups": [],
    },
    {
        "questions": [
            "How does HTTPS keep my connection secure?",
            "What happens during a TLS handshake?",
        ],
        "answer": """HTTPS is HTTP sent over TLS, which provides three things: encryption, integrity and authentication.

During the handshake:

1. Your browser says hello and lists the encryption methods it supports.
2. The server answers with its choice and its **certificate**, which contains its public key and is signed by a certificate authority your browser trusts.
3. The browser checks the signature, the domain name and the expiry date.
4. Both sides perform a key exchange (usually elliptic-curve Diffie-Hellman) to agree on a shared secret without ever sending it over the network.
5. From that secret they derive symmetric keys, and all further traffic is encrypted and authenticated with them.

Because the key exchange uses fresh random values for each connection, recording traffic today and stealing the server's private key later still does not reveal past sessions.""",
        "followups": [],
    },
    {
        "questions": [
            "What is the capital of Australia? I always thought it was Sydney.",
            "Why isn't Sydney the capital of Australia?",
        ],
        "answer": """The capital of Australia is **Canberra**. It is a common mix-up because Sydney and Melbourne are much bigger and better known.

When the Australian colonies federated in 1901, Sydney and Melbourne both wanted to be the capital. As a compromise, the constitution required a new capital in New South Wales but at least 100 miles from Sydney. Canberra was chosen in 1908, designed by the American architects Walter Burley Griffin and Marion Mahony Griffin, and Parliament moved there in 1927. Melbourne served as the temporary seat of government until then.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I take care of a houseplant that is losing leaves?",
            "My fiddle leaf fig keeps dropping leaves. Help?",
        ],
        "answer": """Leaf drop is usually a sign of stress from one of a few causes:

- **Watering:** both too much and too little cause it. Water only when the top few centimetres of soil are dry, and make sure the pot drains.
- **Light:** most indoor trees need bright, indirect light. A spot a metre or two from a large window is often ideal.
- **Moving or draughts:** fiddle leaf figs hate change. Keep them away from radiators, air conditioners and doors that open often.
- **Roots:** if water runs straight through or the soil smells sour, check the roots. Firm white roots are healthy; brown mushy ones mean rot.

Pick one change at a time and give the plant a few weeks to respond before trying something else.""",
        "followups": [],
    },
    {
        "questions": [
            "Can you explain recursion with an example?",
            "What is recursion and how does the base case work?",
        ],
        "answer": """A recursive function solves a problem by calling itself on a smaller version of the same problem, until it reaches a case simple enough to answer directly: the **base case**.

```python
def factorial(n):
    if n <= 1:          # base case
        return 1
    return n * factorial(n - 1)  # recursive case


print(factorial(5))  # 120
```

`factorial(5)` becomes `5 * factorial(4)`, which becomes `5 * 4 * factorial(3)`, and so on until `factorial(1)` returns 1 and all the pending multiplications finish.

Without a base case, the function would call itself forever until Python raises `RecursionError`. For very deep recursion, a loop is often the safer choice, because Python does not optimise tail calls.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I set up a virtual environment for a Python project?",
            "What's the proper way to manage Python dependencies for a project?",
        ],
        "answer": """Use the built-in `venv` module to give each project its own environment:

```bash
python3 -m venv .venv
source .venv/bin/activate        # on Windows: .venv\\Scripts\\activate
pip install requests pandas
pip freeze > requirements.txt
```

Anyone can then recreate the same environment with:

```bash
python3 -m venv .venv
source .venv/bin/activate
pip install -r requirements.txt
```

Add `.venv/` to your `.gitignore` so the environment itself is never committed.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I write a Kotlin data class and use it in a list?",
            "Show me how to sort a list of objects in Kotlin.",
        ],
        "answer": """A data class gives you `equals`, `hashCode`, `toString` and `copy` for free:

```kotlin
data class Book(val title: String, val author: String, val year: Int)

fun main() {
    val books = listOf(
        Book("Dune", "Frank Herbert", 1965),
        Book("Neuromancer", "William Gibson", 1984),
        Book("Foundation", "Isaac Asimov", 1951),
    )

    val byYear = books.sortedBy { it.year }
    byYear.forEach { println("${it.year}: ${it.title}") }

    val newest = books.maxByOrNull { it.year }
    println("Newest: ${newest?.title}")
}
```

`sortedBy` returns a new list and leaves the original unchanged. Use `sortedWith(compareBy({ it.author }, { it.year }))` to sort by several fields.""",
        "followups": [],
    },
    {
        "questions": [
            "How do I make an HTTP request in C#?",
            "What's the right way to use HttpClient in C#?",
        ],
        "answer": """Create one `HttpClient` and reuse it, then use the async methods:

```csharp
using System.Net.Http;
using System.Net.Http.Json;

public record Todo(int Id, string Title, bool Completed);

public static class Program
{
    private static readonly HttpClient Client = new HttpClient();

    public static async Task Main()
    {
        var todo = await Client.GetFromJsonAsync<Todo>(
            "https://jsonplaceholder.typicode.com/todos/1");
        Console.WriteLine($"{todo?.Title} (done: {todo?.Completed})");
    }
}
```

Creating a new `HttpClient` for every request can exhaust sockets under load, which is why a shared instance (or `IHttpClientFactory` in ASP.NET Core) is recommended.""",
        "followups": [],
    },
    {
        "questions": [
            "What is the Pythagorean theorem and how do I use it?",
            "How do I find the length of the hypotenuse?",
        ],
        "answer": """In a right-angled triangle, the square of the longest side (the hypotenuse, c) equals the sum of the squares of the other two sides:

a^2 + b^2 = c^2

Example: if the two shorter sides are 6 cm and 8 cm, then c^2 = 36 + 64 = 100, so c = 10 cm.

You can also work backwards. If the hypotenuse is 13 and one side is 5, the other side is sqrt(169 - 25) = sqrt(144) = 12. The theorem is used everywhere from carpentry (checking that a corner is square with a 3-4-5 triangle) to computing distances between points on a screen.""",
        "followups": [],
    },
    {
        "questions": [
            "Why do we have leap years?",
            "How do leap years work exactly?",
        ],
        "answer": """The Earth takes about 365.2422 days to orbit the Sun. A calendar of 365 days would drift by almost a quarter of a day each year, so the seasons would slowly move through the months.

The Gregorian calendar fixes this with three rules:

1. A year divisible by 4 is a leap year, with 29 February.
2. Except years divisible by 100, which are not leap years.
3. Except years divisible by 400, which are leap years after all.

So 2000 was a leap year, but 1900 was not and 2100 will not be. This gives an average year of 365.2425 days, which is off by only about one day every 3,000 years.""",
        "followups": [
            ("Can you write that as a Python function?", """Sure:

```python
def is_leap_year(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


for year in (1900, 2000, 2023, 2024):
    print(year, is_leap_year(year))
```

The standard library also has `calendar.isleap(year)`, which does the same thing."""),
        ],
    },
]

GENERIC_FOLLOWUPS = [
    ("Thanks, that helps a lot!", "You're welcome! If anything is still unclear or you want to go deeper into one of the points, just ask."),
    ("Can you summarise that in one sentence?", "In short: start with the simplest approach that works, check the result, and only add complexity when you have a clear reason."),
    ("Great, thank you.", "Glad I could help. Good luck!"),
]

# Framing that real users and the assistant wrapped around the same request.
QUESTION_PREFIXES = [
    "", "", "", "", "Hi! ", "Hello, ", "Quick question: ", "I'm new to this. ", "Please help: ", "Hey, ",
    "Can you help me? ", "Good morning! ", "I have a question. ", "My friend asked me this and I wasn't sure. ",
    "I'm studying for an exam. ", "Sorry if this is basic, but ",
]
QUESTION_SUFFIXES = [
    "", "", "", "", " Thanks!", " Please keep it simple.", " Explain it step by step.", " An example would help.",
    " Thank you in advance.", " I only need the short version.",
]
ANSWER_OPENERS = ["", "", "", "Sure! ", "Great question. ", "Of course. ", "Happy to help. ", "Good question! ",
                  "Certainly. ", "Absolutely. "]
ANSWER_CLOSERS = [
    "", "", "", "Let me know if you have any other questions.", "I hope this helps!",
    "Feel free to ask if something is unclear.", "Good luck!", "If you tell me more about your situation, "
    "I can tailor the answer.", "Happy to go into more detail on any of these points.",
]

# Conversations in other languages; the cleaner must keep their text intact.
FOREIGN_TOPICS = [
    {
        "questions": ["如何用Python读取一个JSON文件？"],
        "answer": """可以使用标准库中的 `json` 模块：

```python
import json

with open("data.json", encoding="utf-8") as f:
    data = json.load(f)

print(data["name"])
```

注意要指定 `encoding="utf-8"`，这样在不同的操作系统上都能正确读取中文内容。""",
        "followups": [("如果文件很大怎么办？", "如果文件非常大，可以考虑使用 JSON Lines 格式，每行一个 JSON 对象，然后逐行读取和解析，这样不需要一次把整个文件加载到内存中。")],
    },
    {
        "questions": ["请推荐几个适合周末去的北京景点。"],
        "answer": """北京周末游可以考虑以下几个地方：

- **颐和园**：皇家园林，适合散步和划船。
- **南锣鼓巷和什刹海**：感受老北京的胡同文化。
- **798艺术区**：有很多画廊和咖啡馆。
- **慕田峪长城**：人比八达岭少，风景也很好。

建议提前在网上预约门票，周末人比较多。""",
        "followups": [],
    },
    {
        "questions": ["¿Cuál es la diferencia entre «ser» y «estar» en español?"],
        "answer": """Ambos verbos significan "to be", pero se usan en situaciones distintas.

- **Ser** describe características permanentes o esenciales: identidad, origen, profesión, material. Por ejemplo: *Soy profesora* o *La mesa es de madera*.
- **Estar** describe estados temporales y ubicación: *Estoy cansado* o *El libro está en la mesa*.

Algunos adjetivos cambian de significado: *ser listo* significa ser inteligente, mientras que *estar listo* significa estar preparado.""",
        "followups": [("¿Me puedes dar más ejemplos?", """Claro:

- *Es aburrido* (es una persona aburrida) frente a *Está aburrido* (se siente aburrido ahora).
- *Es rico* (tiene mucho dinero) frente a *Está rico* (la comida tiene buen sabor).
- *Es verde* (de color verde) frente a *Está verde* (la fruta no está madura).""")],
    },
    {
        "questions": ["¿Cómo preparo una tortilla de patatas tradicional?"],
        "answer": """Ingredientes para cuatro personas: 4 patatas medianas, 5 huevos, 1 cebolla (opcional), aceite de oliva y sal.

1. Pela las patatas y córtalas en láminas finas. Pica la cebolla.
2. Fríe las patatas y la cebolla a fuego medio en abundante aceite durante unos 20 minutos, hasta que estén tiernas pero no doradas.
3. Escúrrelas y mézclalas con los huevos batidos y la sal. Deja reposar cinco minutos.
4. Cuaja la mezcla en una sartén con un poco de aceite, dale la vuelta con un plato y termina de cocinar por el otro lado.

El secreto está en no tener prisa al freír las patatas.""",
        "followups": [],
    },
    {
        "questions": ["Как в Python отсортировать словарь по значениям?"],
        "answer": """Словарь можно отсортировать с помощью функции `sorted` и параметра `key`:

```python
scores = {"Анна": 87, "Борис": 92, "Вера": 78}
by_score = dict(sorted(scores.items(), key=lambda item: item[1], reverse=True))
print(by_score)  # {'Борис': 92, 'Анна': 87, 'Вера': 78}
```

Начиная с Python 3.7 словари сохраняют порядок вставки, поэтому результат останется отсортированным.""",
        "followups": [],
    },
    {
        "questions": ["Посоветуй, как лучше подготовиться к собеседованию на должность программиста."],
        "answer": """Вот несколько советов:

1. **Повторите основы**: структуры данных, алгоритмы, сложность алгоритмов.
2. **Решайте задачи** на платформах вроде LeetCode, проговаривая решение вслух.
3. **Изучите компанию** и продукт, подготовьте вопросы интервьюеру.
4. **Подготовьте рассказы о проектах**: какую задачу решали, что сделали лично вы, какой был результат.

И не бойтесь говорить «я не знаю, но рассуждал бы так» — ход мыслей часто важнее готового ответа.""",
        "followups": [],
    },
    {
        "questions": ["Quelle est la meilleure façon d'apprendre à programmer quand on débute ?"],
        "answer": """Pour débuter, le plus important est de pratiquer régulièrement sur de petits projets concrets.

- Choisissez un langage accessible comme **Python**.
- Suivez un cours structuré, puis réalisez tout de suite de petits programmes : une calculatrice, un jeu de devinettes, un gestionnaire de tâches.
- Lisez les messages d'erreur attentivement : ils indiquent presque toujours la ligne et la cause du problème.
- Partagez votre code et demandez des retours.

Trente minutes par jour valent mieux que quatre heures une fois par semaine.""",
        "followups": [],
    },
    {
        "questions": ["Wie funktioniert eine Wärmepumpe?"],
        "answer": """Eine Wärmepumpe nutzt die Wärme aus der Umgebung, also aus Luft, Erdreich oder Grundwasser, und hebt sie auf ein höheres Temperaturniveau.

1. Ein Kältemittel nimmt im **Verdampfer** Umgebungswärme auf und verdampft dabei schon bei niedrigen Temperaturen.
2. Ein **Verdichter** komprimiert den Dampf, wodurch seine Temperatur stark steigt.
3. Im **Verflüssiger** gibt das Kältemittel die Wärme an das Heizsystem ab und wird wieder flüssig.
4. Ein **Expansionsventil** senkt den Druck, und der Kreislauf beginnt von vorn.

Aus einer Kilowattstunde Strom entstehen so typischerweise drei bis vier Kilowattstunden Wärme.""",
        "followups": [],
    },
    {
        "questions": ["日本語を勉強するためのおすすめの方法を教えてください。"],
        "answer": """日本語の勉強には、次の方法がおすすめです。

- **ひらがなとカタカナ**をまず完全に覚える。
- 毎日少しずつ**漢字**と単語を復習する（間隔反復のアプリが便利です）。
- 自分のレベルに合った**ドラマやポッドキャスト**を聞く。
- 言語交換のパートナーと**実際に話す**。

毎日続けることがいちばん大切です。""",
        "followups": [],
    },
]

# Requests whose answers mention the blocked word, as many real 2023 chats did.
BLOCKED_EXCHANGES = [
    ("Who made you?", "I am ChatGPT, a large language model trained by OpenAI. I can help you with questions, writing, coding and much more."),
    ("Can you browse the internet?", "As an AI language model developed by OpenAI, I do not have the ability to browse the internet. My knowledge comes from the data I was trained on."),
    ("What is the OpenAI API and how do I call it from Python?", "The OpenAI API lets you send text to a hosted model and get a completion back. You install the client library, set your API key as an environment variable, and call the chat completions endpoint with a list of messages."),
    ("Do you have feelings?", "No. I am a language model created by openai, so I do not have feelings or consciousness, although I can talk about emotions and help you think through them."),
]
