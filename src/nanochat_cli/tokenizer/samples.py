'''Short texts of different kinds for `nanochat tokenizer eval`, written for this project (no third-party text).

Each is a few hundred to ~1,500 bytes: enough for a stable bytes/token figure (±2% between halves), small enough
to read. The point is contrast: our Bible-trained cpu-tiny vocab should compress English prose well and Korean,
code and LaTeX poorly, and GPT-4's 100 k vocab should win everywhere but on the training corpus itself.
'''

from __future__ import annotations

NEWS = """Riverside Bike Network to Grow by 23 Kilometres, Council Decides

MILLBROOK, March 4 - The Millbrook City Council voted 7-2 on Tuesday evening to fund a $14.6 million expansion \
of the riverside cycling network, adding 23 kilometres of protected lanes and four new footbridges by the end of \
2027. Supporters said the plan would cut commuting times for the roughly 9,400 residents who already cycle to \
work, while opponents questioned whether the city could afford the maintenance costs after federal grants expire.

"This is the cheapest transport capacity we can buy," said Councillor Ana Petrovic, who sponsored the motion. \
The transport department estimates that each kilometre of protected lane costs about $410,000 to build and \
$12,500 a year to maintain. Construction of the first section, between Harbour Street and the old mill, is \
scheduled to begin in June; residents can comment on the route at public meetings on April 2 and April 16.
"""

KOREAN = """오늘 아침 서울에는 가을비가 조용히 내렸다. 출근길 시민들은 우산을 쓰고 지하철역으로 서둘러 걸어갔고, \
버스 정류장 앞에는 따뜻한 커피를 든 사람들이 줄지어 서 있었다. 기상청은 내일 오후부터 하늘이 차차 맑아지겠지만 \
아침 기온이 크게 떨어질 것이라고 예보했다. 도서관 옆 작은 카페에서는 대학생들이 다음 주 시험을 준비하며 \
노트를 펼쳐 놓고 이야기를 나누었다. 한 학생은 "비 오는 날에는 공부가 더 잘 된다"며 웃었다.
"""

CODE = '''from collections import deque


class MovingAverage:
    """Mean of the last `window` values pushed, in O(1) per update."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.values: deque[float] = deque()
        self.total = 0.0

    def push(self, x: float) -> float:
        self.values.append(x)
        self.total += x
        if len(self.values) > self.window:
            self.total -= self.values.popleft()
        return self.total / len(self.values)


if __name__ == "__main__":
    avg = MovingAverage(window=3)
    for reading in [12.0, 15.5, 11.25, 18.0, 16.75]:
        print(f"{reading:6.2f} -> {avg.push(reading):6.2f}")
'''

MATH = r"""\begin{theorem}[Geometric series]
For every real $r$ with $|r| < 1$ and every $a \in \mathbb{R}$,
\[
  \sum_{k=0}^{\infty} a r^{k} = \frac{a}{1 - r}.
\]
\end{theorem}
\begin{proof}
Let $S_n = \sum_{k=0}^{n} a r^{k}$. Then $r S_n = \sum_{k=1}^{n+1} a r^{k}$, so
$S_n - r S_n = a - a r^{n+1}$ and, since $r \neq 1$,
\[
  S_n = a \, \frac{1 - r^{n+1}}{1 - r}.
\]
Because $|r| < 1$ we have $\lim_{n \to \infty} r^{n+1} = 0$, hence $\lim_{n\to\infty} S_n = \frac{a}{1-r}$.
For example, $\sum_{k \ge 0} 2^{-k} = 2$ and $\sum_{k \ge 0} (-\tfrac{1}{3})^{k} = \tfrac{3}{4}$.
\end{proof}
"""

SCIENCE = """Plate tectonics describes the Earth's outer shell, the lithosphere, as a mosaic of about fifteen major \
plates that move relative to one another at a few centimetres per year - roughly the speed at which fingernails \
grow. The plates ride on the asthenosphere, a hotter and mechanically weaker layer of the upper mantle. Where \
plates pull apart, as along the Mid-Atlantic Ridge, magma rises and solidifies into new oceanic crust; where they \
converge, the denser plate usually sinks beneath the other in a subduction zone, producing deep ocean trenches, \
volcanic arcs and most of the planet's largest earthquakes. Evidence for the theory includes the symmetric \
magnetic stripes recorded in seafloor basalt, the matching fossils and rock formations on continents now \
separated by oceans, and direct GPS measurements of plate motion.
"""

SAMPLES = {"news": NEWS, "korean": KOREAN, "code": CODE, "math": MATH, "science": SCIENCE}
