"""A small labelled set of chat turns in twelve languages, for the language filter's tests and benchmark.

Sentences are written by hand, in the register of ShareGPT questions and answers;
`labelled_conversations(seed)` combines them into conversations (some with English
code blocks, which the identifier must look past) labelled with their language.
"""

from __future__ import annotations

import random

SENTENCES = {
    "en": [
        "How do I reverse a list in Python without changing the original?",
        "The easiest way is to use slicing, which returns a new list in the opposite order.",
        "Can you explain the difference between a process and a thread?",
        "A process has its own memory, while threads share the memory of the process they belong to.",
        "Write a short poem about the sea at night.",
        "What should I pack for a three day hiking trip in the mountains?",
        "Please summarise the main causes of the French Revolution in a few sentences.",
        "I would recommend starting with a simple budget and tracking your expenses every week.",
    ],
    "zh": [
        "如何在不改变原列表的情况下反转一个列表？",
        "最简单的方法是使用切片，它会返回一个顺序相反的新列表。",
        "你能解释一下进程和线程之间的区别吗？",
        "进程拥有自己的内存空间，而线程共享所属进程的内存。",
        "请写一首关于夜晚大海的短诗。",
        "去山里徒步三天应该带些什么东西？",
        "请用几句话总结法国大革命的主要原因。",
        "我建议你先做一个简单的预算，然后每周记录自己的开支。",
    ],
    "es": [
        "¿Cómo invierto una lista en Python sin cambiar la original?",
        "La forma más sencilla es usar una rebanada, que devuelve una lista nueva en orden inverso.",
        "¿Puedes explicar la diferencia entre un proceso y un hilo?",
        "Un proceso tiene su propia memoria, mientras que los hilos comparten la memoria del proceso.",
        "Escribe un poema corto sobre el mar por la noche.",
        "¿Qué debo llevar para una excursión de tres días por la montaña?",
        "Por favor, resume en pocas frases las causas principales de la Revolución Francesa.",
        "Te recomendaría empezar con un presupuesto sencillo y anotar tus gastos cada semana.",
    ],
    "fr": [
        "Comment inverser une liste en Python sans modifier l'originale ?",
        "Le plus simple est d'utiliser le découpage, qui renvoie une nouvelle liste dans l'ordre inverse.",
        "Peux-tu expliquer la différence entre un processus et un fil d'exécution ?",
        "Un processus possède sa propre mémoire, alors que les fils partagent celle de leur processus.",
        "Écris un court poème sur la mer pendant la nuit.",
        "Que dois-je emporter pour une randonnée de trois jours en montagne ?",
        "Résume en quelques phrases les principales causes de la Révolution française, s'il te plaît.",
        "Je te conseille de commencer par un budget simple et de noter tes dépenses chaque semaine.",
    ],
    "de": [
        "Wie kehre ich eine Liste in Python um, ohne das Original zu verändern?",
        "Am einfachsten ist Slicing, das eine neue Liste in umgekehrter Reihenfolge zurückgibt.",
        "Kannst du den Unterschied zwischen einem Prozess und einem Thread erklären?",
        "Ein Prozess hat seinen eigenen Speicher, während Threads den Speicher ihres Prozesses teilen.",
        "Schreib ein kurzes Gedicht über das Meer in der Nacht.",
        "Was sollte ich für eine dreitägige Wanderung in den Bergen einpacken?",
        "Fasse bitte die wichtigsten Ursachen der Französischen Revolution in wenigen Sätzen zusammen.",
        "Ich würde dir empfehlen, mit einem einfachen Budget anzufangen und jede Woche deine Ausgaben aufzuschreiben.",
    ],
    "ru": [
        "Как перевернуть список в Python, не изменяя исходный?",
        "Проще всего использовать срез, который возвращает новый список в обратном порядке.",
        "Можешь объяснить разницу между процессом и потоком?",
        "У процесса есть собственная память, а потоки разделяют память своего процесса.",
        "Напиши короткое стихотворение о ночном море.",
        "Что взять с собой в трёхдневный поход по горам?",
        "Пожалуйста, кратко опиши основные причины Французской революции.",
        "Я бы посоветовал начать с простого бюджета и записывать расходы каждую неделю.",
    ],
    "ja": [
        "元のリストを変更せずに、Pythonでリストを逆順にするにはどうすればいいですか？",
        "一番簡単なのはスライスを使う方法で、逆順の新しいリストが返されます。",
        "プロセスとスレッドの違いを説明してもらえますか？",
        "プロセスは独自のメモリを持ち、スレッドは所属するプロセスのメモリを共有します。",
        "夜の海についての短い詩を書いてください。",
        "山で三日間のハイキングをするには何を持っていけばいいですか？",
        "フランス革命の主な原因を数文でまとめてください。",
        "まずは簡単な予算を立てて、毎週の支出を記録することをおすすめします。",
    ],
    "ko": [
        "원래 리스트를 바꾸지 않고 파이썬에서 리스트를 뒤집으려면 어떻게 하나요?",
        "가장 쉬운 방법은 슬라이싱을 사용하는 것으로, 순서가 반대인 새 리스트를 돌려줍니다.",
        "프로세스와 스레드의 차이를 설명해 줄 수 있나요?",
        "프로세스는 자체 메모리를 가지고, 스레드는 자신이 속한 프로세스의 메모리를 공유합니다.",
        "밤바다에 대한 짧은 시를 써 주세요.",
        "산에서 사흘 동안 하이킹을 하려면 무엇을 챙겨야 하나요?",
        "프랑스 혁명의 주요 원인을 몇 문장으로 요약해 주세요.",
        "먼저 간단한 예산을 세우고 매주 지출을 기록하는 것을 추천합니다.",
    ],
    "pt": [
        "Como inverto uma lista em Python sem alterar a original?",
        "A maneira mais simples é usar fatiamento, que devolve uma nova lista na ordem inversa.",
        "Você pode explicar a diferença entre um processo e uma thread?",
        "Um processo tem a sua própria memória, enquanto as threads compartilham a memória do processo.",
        "Escreva um poema curto sobre o mar à noite.",
        "O que devo levar para uma caminhada de três dias nas montanhas?",
        "Por favor, resuma em poucas frases as principais causas da Revolução Francesa.",
        "Eu recomendaria começar com um orçamento simples e anotar os seus gastos toda semana.",
    ],
    "it": [
        "Come posso invertire una lista in Python senza modificare quella originale?",
        "Il modo più semplice è usare lo slicing, che restituisce una nuova lista in ordine inverso.",
        "Puoi spiegare la differenza tra un processo e un thread?",
        "Un processo ha la propria memoria, mentre i thread condividono la memoria del loro processo.",
        "Scrivi una breve poesia sul mare di notte.",
        "Cosa dovrei portare per un'escursione di tre giorni in montagna?",
        "Per favore, riassumi in poche frasi le cause principali della Rivoluzione francese.",
        "Ti consiglio di iniziare con un budget semplice e di annotare le spese ogni settimana.",
    ],
    "ar": [
        "كيف أعكس قائمة في بايثون دون تغيير القائمة الأصلية؟",
        "أسهل طريقة هي استخدام التقطيع، الذي يعيد قائمة جديدة بترتيب معكوس.",
        "هل يمكنك شرح الفرق بين العملية والخيط؟",
        "العملية لها ذاكرتها الخاصة، بينما تتشارك الخيوط ذاكرة العملية التي تنتمي إليها.",
        "اكتب قصيدة قصيرة عن البحر في الليل.",
        "ماذا يجب أن آخذ معي في رحلة مشي لمدة ثلاثة أيام في الجبال؟",
        "من فضلك لخص الأسباب الرئيسية للثورة الفرنسية في بضع جمل.",
        "أنصحك بالبدء بميزانية بسيطة وتسجيل نفقاتك كل أسبوع.",
    ],
    "vi": [
        "Làm thế nào để đảo ngược một danh sách trong Python mà không thay đổi danh sách gốc?",
        "Cách đơn giản nhất là dùng cắt lát, nó trả về một danh sách mới theo thứ tự ngược lại.",
        "Bạn có thể giải thích sự khác nhau giữa tiến trình và luồng không?",
        "Tiến trình có bộ nhớ riêng, còn các luồng dùng chung bộ nhớ của tiến trình chứa chúng.",
        "Hãy viết một bài thơ ngắn về biển vào ban đêm.",
        "Tôi nên mang theo những gì cho chuyến đi bộ ba ngày trên núi?",
        "Vui lòng tóm tắt những nguyên nhân chính của Cách mạng Pháp trong vài câu.",
        "Tôi khuyên bạn nên bắt đầu với một ngân sách đơn giản và ghi lại chi tiêu mỗi tuần.",
    ],
}

CODE_BLOCK = (
    "```python\ndef reverse_items(items):\n    return items[::-1]  # a new list, the original is untouched\n```"
)


def labelled_conversations(seed=0, per_language=10):
    """[(language, items)]: two to four turns of one language's sentences; every third answer carries code."""
    rng = random.Random(seed)
    samples = []
    for language, sentences in SENTENCES.items():
        for index in range(per_language):
            turns = []
            for turn in range(rng.choice((2, 2, 4))):
                text = " ".join(rng.sample(sentences, rng.choice((1, 1, 2))))
                if turn % 2 == 1 and index % 3 == 0:
                    text += "\n\n" + CODE_BLOCK
                turns.append({"from": "human" if turn % 2 == 0 else "gpt", "value": text})
            samples.append((language, turns))
    return samples
